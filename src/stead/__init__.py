"""stead: keep machine-learning models working in production."""

from __future__ import annotations

from stead._version import __version__

__all__ = ["__version__"]
