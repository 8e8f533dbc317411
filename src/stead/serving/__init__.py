"""Serving: ``stead serve``, its ``/api/v1`` REST API and token auth (layer: serving).

``app.create_app`` builds the Starlette app, ``app.run_server`` runs it under uvicorn, ``api`` turns the
store's route table into endpoints and ``auth`` checks bearer tokens. Starlette is imported only by this
package, never by the core.
"""

from __future__ import annotations
