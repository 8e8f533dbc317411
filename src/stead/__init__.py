"""stead: keep machine-learning models working in production.

The SDK surface (layer: the top of the library; no logic here)::

    import stead

    with stead.start_run(experiment="churn", params={"C": 1.0}, seed=42) as run:
        run.log_metric("auc", 0.91)

    client = stead.Client()          # STEAD_URI: a folder, postgresql://… or http://…
    client.search_runs(experiment="churn", filter="metrics.auc > 0.8")

Names are imported on first use, so ``import stead`` stays fast.
"""

from __future__ import annotations

import typing as _typing

from stead._version import __version__
from stead.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    SteadError,
    ValidationError,
)

if _typing.TYPE_CHECKING:  # pragma: no cover
    from stead.client import Client
    from stead.entities import Ref
    from stead.tracking import ActiveRun, active_run, start_run

__all__ = [
    "ActiveRun",
    "Client",
    "ConflictError",
    "IntegrityError",
    "NotFoundError",
    "Ref",
    "SteadError",
    "ValidationError",
    "__version__",
    "active_run",
    "start_run",
]

_LAZY = {
    "ActiveRun": "stead.tracking",
    "Client": "stead.client",
    "Ref": "stead.entities",
    "active_run": "stead.tracking",
    "start_run": "stead.tracking",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stead' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
