"""The web UI at ``/ui/``: server-rendered pages over the store, with confirmed actions (layer: ui).

Read-only Starlette + Jinja2 pages (autoescape on) for runs, datasets, models, lineage and deployments, with
charts drawn by the vendored uPlot; the CLI mounts them into ``stead serve`` with
``create_app(settings, extra_routes=ui_routes(settings))``. See :mod:`stead.ui.app`.
"""

from __future__ import annotations

from stead.ui.app import ui_routes

__all__ = ["ui_routes"]
