"""The store: the only door to persistence (layer: store).

``open_store(settings)`` gives a ``SqlStore`` for a folder or a ``postgresql://`` URL, and an ``HttpStore``
for ``http://`` (a running ``stead serve``). Both have the same methods; nothing above this package
imports SQLAlchemy. SQLAlchemy is imported only when a store is opened, so ``import stead`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stead.settings import Settings
    from stead.store.sql import SqlStore

__all__ = ["Store", "open_store"]

Store = Any  # SqlStore | HttpStore: the same methods; see stead.store.sql.SqlStore for their documentation.


def open_store(settings: Settings) -> SqlStore:
    """Open (and migrate, if needed) the store that ``settings`` names."""
    if settings.backend == "http":
        from stead.store.http import HttpStore

        store: Any = HttpStore(settings)
        return store  # type: ignore[no-any-return]
    from stead.store.sql import SqlStore

    return SqlStore(settings)
