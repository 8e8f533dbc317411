"""``python -m stead`` runs the CLI (used by ``stead reproduce`` to re-launch ``stead …`` commands)."""

from __future__ import annotations

import sys

from stead.cli import main

sys.exit(main())
