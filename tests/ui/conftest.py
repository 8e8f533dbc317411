"""Fixtures of the UI tests: the filled store served with the UI (see ui_site.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("sklearn")

from ui_site import Site, build_site


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STEAD_STATS_INTERVAL", "0.3")  # serving stats every 0.3 s, so canary analysis sees them soon
        yield from build_site(tmp_path_factory.mktemp("ui-site"))
