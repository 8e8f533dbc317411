"""Lineage: the graph data -> run -> model version -> deployment -> monitor/alert -> retrain, built from
the edges the store records at the moment things happen (layer: lineage).

Nodes are ``"<kind>:<id>"`` strings: ``dataset:<hash>``, ``run:<id>``, ``version:<name>/<n>``,
``deployment:<name>``, ``report:<id>``, ``alert:<id>``, ``pipeline:<id>``, ``rollout:<id>``.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from stead.entities import LineageGraph, Ref
from stead.errors import ValidationError

if TYPE_CHECKING:
    from stead.store.sql import SqlStore

__all__ = ["build_graph", "node_of", "render_dot", "render_tree"]


def node_of(store: SqlStore, ref: Ref) -> str:
    """The node id a reference points at (an alias is resolved to its version now)."""
    if ref.kind == "run":
        return f"run:{store.get_run(str(ref.id)).id}"
    if ref.kind == "dataset":
        return f"dataset:{store.get_dataset(str(ref.id)).id}"
    if ref.kind == "deployment":
        return f"deployment:{ref.name}"
    resolve = getattr(store, "resolve_version", None)
    if resolve is None:
        raise ValidationError(f"model references like {ref} need the model registry, which this store lacks")
    version = resolve(ref)
    return f"version:{version.name}/{version.version}"


def _label(node: str) -> str:
    kind, _, ident = node.partition(":")
    if kind in ("run", "dataset", "pipeline", "rollout") and len(ident) > 12:
        return f"{kind} {ident[:12]}"
    if kind == "version":
        return ident
    return f"{kind} {ident}"


def build_graph(store: SqlStore, ref: Ref, direction: str = "both", depth: int = 10) -> LineageGraph:
    """Walk the edges from ``ref`` up (towards its sources), down (towards what it fed), or both."""
    if direction not in ("up", "down", "both"):
        raise ValidationError(f"direction must be up, down or both, got {direction!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValidationError(f"depth must be a non-negative integer, got {depth!r}")
    start = node_of(store, ref)
    nodes = {start}
    edges: dict[tuple[str, str, str], dict[str, Any]] = {}
    for way in ("up", "down") if direction == "both" else (direction,):
        frontier = deque([start])
        seen = {start}
        for _ in range(depth):
            if not frontier:
                break
            found = store.edges_of(list(frontier), way)
            frontier = deque()
            for e in found:
                edges[(e["source"], e["target"], e["kind"])] = e
                nxt = e["source"] if way == "up" else e["target"]
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
            nodes |= seen
    ordered = sorted(nodes, key=lambda n: (n != start, n))
    return LineageGraph(
        nodes=[{"id": n, "kind": n.partition(":")[0], "label": _label(n)} for n in ordered],
        edges=[{"source": s, "target": t, "kind": k} for (s, t, k) in sorted(edges)],
    )


def render_tree(graph: LineageGraph, ref: str) -> str:
    """A terminal view: the start node, what it came from (up) and what it fed (down)."""
    if not graph.nodes:
        return f"{ref}: no lineage"
    start = graph.nodes[0]["id"]
    labels = {n["id"]: n["label"] for n in graph.nodes}
    ups: dict[str, list[tuple[str, str]]] = {}
    downs: dict[str, list[tuple[str, str]]] = {}
    for e in graph.edges:
        ups.setdefault(e["target"], []).append((e["source"], e["kind"]))
        downs.setdefault(e["source"], []).append((e["target"], e["kind"]))
    lines = [f"{labels[start]}  ({ref})"]

    def walk(node: str, links: dict[str, list[tuple[str, str]]], arrow: str, prefix: str, seen: set[str]) -> None:
        children = sorted(links.get(node, []))
        for i, (child, kind) in enumerate(children):
            last = i == len(children) - 1
            lines.append(f"{prefix}{'└─' if last else '├─'}{arrow} {labels.get(child, child)}  [{kind}]")
            if child not in seen:
                walk(child, links, arrow, prefix + ("   " if last else "│  "), seen | {child})

    if ups.get(start):
        lines.append("came from:")
        walk(start, ups, "<-", "  ", {start})
    if downs.get(start):
        lines.append("fed:")
        walk(start, downs, "->", "  ", {start})
    return "\n".join(lines)


def render_dot(graph: LineageGraph) -> str:
    """Graphviz DOT text for ``dot -Tsvg``."""
    out = ["digraph lineage {", "  rankdir=LR;", "  node [shape=box, fontname=Helvetica];"]
    for n in graph.nodes:
        label = n["label"].replace('"', '\\"')
        out.append(f'  "{n["id"]}" [label="{label}"];')
    for e in graph.edges:
        out.append(f'  "{e["source"]}" -> "{e["target"]}" [label="{e["kind"]}"];')
    out.append("}")
    return "\n".join(out)
