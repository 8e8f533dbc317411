"""Route choice for one request: weighted canary, sticky A/B on a routing key, shadow fan-out (layer: serving;
pure: no I/O, no clock, and only the random generator passed in).

A deployment's routes are one ``primary``, at most one ``canary`` or ``ab`` route beside it (their weights
add up to 1), and any ``shadow`` routes. A canary is drawn per request; an A/B route is chosen by a stable
hash of the request's ``routing_key`` (BLAKE2b, salted with the deployment name), so the same key always
reaches the same version while the routes stay the same; a request with no key is drawn like a canary.
Shadows get a copy of the request (``weight`` is the share of requests copied).

>>> import random
>>> router = Router([{"model": "m", "version": 1, "kind": "primary", "weight": 0.9},
...                  {"model": "m", "version": 2, "kind": "canary", "weight": 0.1},
...                  {"model": "m", "version": 3, "kind": "shadow", "weight": 1.0}])
>>> rng = random.Random(7)
>>> picks = [router.choose(rng).route.version for _ in range(10_000)]
>>> round(picks.count(2) / len(picks), 2)
0.1
>>> [s.version for s in router.choose(rng).shadows]
[3]
>>> ab = Router([{"model": "m", "version": 1, "kind": "primary", "weight": 0.5},
...              {"model": "m", "version": 2, "kind": "ab", "weight": 0.5}], salt="api")
>>> {ab.choose(rng, "customer-42").route.version for _ in range(100)}  # sticky
{2}
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Choice", "RandomSource", "RouteSpec", "Router", "stable_uniform"]

_KINDS = ("primary", "canary", "ab", "shadow")
_SCALE = float(2**64)


class RandomSource(Protocol):
    """What the router needs of a random generator (``random.Random`` fits)."""

    def random(self) -> float: ...


@dataclass(frozen=True)
class RouteSpec:
    """One route: ``model``/``version`` and its ``kind`` and ``weight`` (see the module docstring)."""

    model: str
    version: int
    kind: str
    weight: float

    @classmethod
    def of(cls, route: Any) -> RouteSpec:
        """From a mapping or an object with the same fields (e.g. ``stead.entities.Route``)."""

        def get(key: str) -> Any:
            return route[key] if isinstance(route, Mapping) else getattr(route, key)

        spec = cls(str(get("model")), int(get("version")), str(get("kind")), float(get("weight")))
        if spec.kind not in _KINDS:
            raise ValueError(f"route kind {spec.kind!r} is not one of {', '.join(_KINDS)}")
        if not 0.0 <= spec.weight <= 1.0:
            raise ValueError(f"route weight must be from 0 to 1, got {spec.weight!r}")
        return spec


@dataclass(frozen=True)
class Choice:
    """Where one request goes: the ``route`` that answers it and the ``shadows`` that get a copy."""

    route: RouteSpec
    shadows: tuple[RouteSpec, ...] = ()


def stable_uniform(key: str, salt: str = "") -> float:
    """A number in [0, 1) that depends only on ``key`` and ``salt`` (same on every machine and run).

    >>> stable_uniform("customer-42") == stable_uniform("customer-42")
    True
    >>> 0.0 <= stable_uniform("a", salt="x") < 1.0
    True
    """
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, key=salt.encode("utf-8")[:64]).digest()
    return int.from_bytes(digest, "big") / _SCALE


class Router:
    """The route choice of one deployment's routes; immutable, so it can be swapped whole while serving.

    >>> Router([{"model": "m", "version": 1, "kind": "canary", "weight": 1.0}])
    Traceback (most recent call last):
    ...
    ValueError: routes need exactly one primary route, got 0
    """

    def __init__(self, routes: Sequence[Any], salt: str = "") -> None:
        specs = [RouteSpec.of(r) for r in routes]
        primaries = [r for r in specs if r.kind == "primary"]
        if len(primaries) != 1:
            raise ValueError(f"routes need exactly one primary route, got {len(primaries)}")
        splits = [r for r in specs if r.kind in ("canary", "ab")]
        if len(splits) > 1:
            raise ValueError("routes may hold at most one canary or A/B route")
        self.primary = primaries[0]
        self.split: RouteSpec | None = splits[0] if splits else None
        self.shadows = tuple(r for r in specs if r.kind == "shadow")
        self.salt = salt
        self.routes = tuple(specs)
        self._primary_only = Choice(self.primary)

    def __repr__(self) -> str:
        inner = ", ".join(f"{r.model}/{r.version} {r.kind} {r.weight:g}" for r in self.routes)
        return f"Router({inner})"

    def choose(self, rng: RandomSource, routing_key: str | None = None) -> Choice:
        """The route for one request (``routing_key`` makes an A/B choice sticky)."""
        route = self.primary
        split = self.split
        if split is not None and split.weight > 0.0:
            if split.kind == "ab" and routing_key is not None:
                u = stable_uniform(routing_key, self.salt)
            else:
                u = rng.random()
            if u < split.weight:
                route = split
        if not self.shadows:
            return self._primary_only if route is self.primary else Choice(route)
        shadows = tuple(s for s in self.shadows if s.weight >= 1.0 or rng.random() < s.weight)
        return Choice(route, shadows)
