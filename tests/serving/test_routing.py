"""The pure route choice: canary shares, sticky A/B, shadows, and their combinations."""

from __future__ import annotations

import random

import pytest

from stead.serving.routing import Router, stable_uniform


def _r(version: int, kind: str, weight: float) -> dict[str, object]:
    return {"model": "churn", "version": version, "kind": kind, "weight": weight}


def test_canary_share_over_10000_requests() -> None:
    router = Router([_r(1, "primary", 0.9), _r(2, "canary", 0.1)])
    rng = random.Random(1234)
    picks = [router.choose(rng).route.version for _ in range(10_000)]
    share = picks.count(2) / len(picks) * 100
    assert abs(share - 10.0) <= 0.9, share


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4], ids=lambda s: f"seed{s}")
def test_canary_share_holds_for_several_seeds(seed: int) -> None:
    router = Router([_r(1, "primary", 0.9), _r(2, "canary", 0.1)])
    rng = random.Random(seed)
    share = sum(router.choose(rng).route.version == 2 for _ in range(10_000)) / 100
    assert abs(share - 10.0) <= 0.9, share


def test_ab_is_sticky_and_balanced_over_10000_keys() -> None:
    router = Router([_r(1, "primary", 0.5), _r(2, "ab", 0.5)], salt="churn-api")
    rng = random.Random(0)
    keys = [f"customer-{i}" for i in range(10_000)]
    first = {k: router.choose(rng, k).route.version for k in keys}
    share = sum(v == 2 for v in first.values()) / len(keys) * 100
    assert abs(share - 50.0) <= 1.5, share
    again = Router([_r(1, "primary", 0.5), _r(2, "ab", 0.5)], salt="churn-api")  # another worker, same routes
    for k in keys[:2000]:
        assert router.choose(rng, k).route.version == first[k]
        assert again.choose(random.Random(99), k).route.version == first[k]


def test_ab_without_a_key_is_drawn_per_request() -> None:
    router = Router([_r(1, "primary", 0.7), _r(2, "ab", 0.3)])
    rng = random.Random(5)
    share = sum(router.choose(rng).route.version == 2 for _ in range(10_000)) / 100
    assert abs(share - 30.0) <= 1.5


def test_primary_canary_and_shadow_combined() -> None:
    router = Router([_r(1, "primary", 0.8), _r(2, "canary", 0.2), _r(3, "shadow", 1.0), _r(4, "shadow", 0.25)])
    rng = random.Random(3)
    answered, shadow3, shadow4 = 0, 0, 0
    for _ in range(10_000):
        choice = router.choose(rng)
        answered += choice.route.version == 2
        versions = [s.version for s in choice.shadows]
        shadow3 += 3 in versions
        shadow4 += 4 in versions
        assert choice.route.kind != "shadow"
    assert shadow3 == 10_000
    assert abs(shadow4 / 100 - 25.0) <= 1.5
    assert abs(answered / 100 - 20.0) <= 1.2


def test_stable_uniform_is_stable_and_salted() -> None:
    assert stable_uniform("k") == stable_uniform("k")
    assert stable_uniform("k", "a") != stable_uniform("k", "b")
    values = [stable_uniform(str(i)) for i in range(1000)]
    assert all(0.0 <= v < 1.0 for v in values)


def test_invalid_routes_are_refused() -> None:
    with pytest.raises(ValueError, match="exactly one primary"):
        Router([_r(1, "primary", 0.5), _r(2, "primary", 0.5)])
    with pytest.raises(ValueError, match="at most one canary or A/B"):
        Router([_r(1, "primary", 0.5), _r(2, "canary", 0.25), _r(3, "ab", 0.25)])
    with pytest.raises(ValueError, match="kind 'blue'"):
        Router([_r(1, "blue", 1.0)])
