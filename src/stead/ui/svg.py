"""Server-side SVG for the web UI: histograms, the drift heatmap and the lineage graph (layer: ui).

Every text that reaches the markup goes through :func:`esc`; the functions return ``markupsafe.Markup`` so the
templates (autoescape on) insert them as they are. No I/O.

>>> str(histogram([0.0, 1.0, 2.0], [3, 1]))[:4]
'<svg'
>>> layout = layered([{"id": "a", "kind": "run", "label": "a"}, {"id": "b", "kind": "version", "label": "b"}],
...                  [{"source": "a", "target": "b", "kind": "produced"}])
>>> [(n["id"], n["layer"]) for n in layout["nodes"]]
[('a', 0), ('b', 1)]
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

__all__ = ["KIND_COLORS", "drift_heatmap", "esc", "histogram", "layered", "lineage_svg", "top_values"]

KIND_COLORS = {
    "dataset": "#2f9e44",
    "run": "#1c7ed6",
    "version": "#7048e8",
    "deployment": "#e8590c",
    "rollout": "#f08c00",
    "decision": "#868e96",
    "report": "#0c8599",
    "alert": "#e03131",
    "pipeline": "#5c7cfa",
    "more": "#adb5bd",
}


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _fmt(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return str(value)
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4g}"


def histogram(edges: Sequence[float], counts: Sequence[int], width: int = 300, height: int = 90) -> Markup:
    """Bars over equal-width bins, with the range under them and each bin's count in its tooltip."""
    if len(edges) < 2 or not counts:
        return Markup('<p class="note">no finite values</p>')
    top = max(counts) or 1
    n = len(counts)
    bar = (width - 2) / n
    plot = height - 18
    parts = [
        f'<svg class="hist" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-label="histogram">'
    ]
    for i, c in enumerate(counts):
        h = max(1.0 if c else 0.0, plot * c / top)
        x = 1 + i * bar
        tip = f"[{_fmt(edges[i])}, {_fmt(edges[i + 1])}): {c}"
        parts.append(
            f'<rect x="{x:.1f}" y="{plot - h:.1f}" width="{max(bar - 1, 1):.1f}" height="{h:.1f}" class="bar">'
            f"<title>{esc(tip)}</title></rect>"
        )
    parts.append(f'<line x1="0" y1="{plot}" x2="{width}" y2="{plot}" class="axis"/>')
    parts.append(f'<text x="1" y="{height - 4}" class="tick">{esc(_fmt(edges[0]))}</text>')
    parts.append(f'<text x="{width - 1}" y="{height - 4}" class="tick" text-anchor="end">{esc(_fmt(edges[-1]))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def top_values(top: Sequence[Mapping[str, Any]], other: int = 0, width: int = 300) -> Markup:
    """Horizontal bars for a categorical column's most frequent values (and the rest as "other")."""
    items = [(str(t.get("value")), int(t.get("count") or 0)) for t in top[:8]]
    if other:
        items.append(("(other)", int(other)))
    if not items:
        return Markup('<p class="note">no values</p>')
    most = max(c for _, c in items) or 1
    row = 16
    height = row * len(items) + 2
    label_w = 96
    parts = [
        f'<svg class="hist" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-label="top values">'
    ]
    for i, (value, count) in enumerate(items):
        y = 1 + i * row
        w = max(1.0, (width - label_w - 50) * count / most)
        parts.append(f'<text x="{label_w - 4}" y="{y + 11}" class="tick" text-anchor="end">{esc(value[:14])}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row - 4}" class="bar">'
            f"<title>{esc(value)}: {count}</title></rect>"
        )
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 11}" class="tick">{count}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _heat(ratio: float | None) -> str:
    """White (no drift) to amber (at the threshold) to red (far beyond it)."""
    if ratio is None:
        return "#f1f3f5"
    r = max(0.0, min(ratio, 2.0)) / 2.0
    # interpolate #ffffff -> #ffd43b -> #e03131
    if r < 0.5:
        t = r / 0.5
        rgb = (255, round(255 + (212 - 255) * t), round(255 + (59 - 255) * t))
    else:
        t = (r - 0.5) / 0.5
        rgb = (round(255 + (224 - 255) * t), round(212 + (49 - 212) * t), round(59 + (49 - 59) * t))
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _drift_ratio(c: Mapping[str, Any]) -> float:
    """How far a feature is from its method's threshold: 1 at the threshold, 0 for none, 2+ for far beyond.

    Tests with a p-value drift when ``p < threshold``: the ratio is ``log p / log threshold``. Distances drift
    when ``statistic >= threshold``: the ratio is ``statistic / threshold``.

    >>> _drift_ratio({"statistic": 0.2, "threshold": 0.1, "p_value": None})
    2.0
    >>> round(_drift_ratio({"statistic": 0.3, "threshold": 0.05, "p_value": 0.05}), 3)
    1.0
    """
    thr = c.get("threshold")
    p = c.get("p_value")
    if p is not None and thr and 0 < float(thr) < 1:
        return math.log(max(float(p), 1e-300)) / math.log(float(thr))
    if thr:
        return float(c["statistic"]) / float(thr)
    return 1.5 if c.get("drifted") else 0.3


def drift_heatmap(
    features: Sequence[str],
    columns: Sequence[str],
    cells: Mapping[tuple[str, int], Mapping[str, Any]],
    width: int = 1100,
) -> Markup:
    """Features (rows) by stored reports (columns, oldest first); colour = statistic / threshold.

    ``cells[(feature, column_index)]`` has ``statistic``, ``threshold``, ``drifted``, ``method``.
    """
    if not features or not columns:
        return Markup('<p class="note">No stored monitor reports yet: the controller stores one each tick.</p>')
    label_w = 150
    row = 22
    n = len(columns)
    cell = max(4.0, min(40.0, (width - label_w - 10) / n))
    w = label_w + cell * n + 10
    h = row * len(features) + 22
    parts = [
        f'<svg class="heatmap" role="img" viewBox="0 0 {w:.0f} {h}" width="{w:.0f}" height="{h}" '
        f'aria-label="drift per feature over time">'
    ]
    for i, feat in enumerate(features):
        y = i * row
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" class="tick" text-anchor="end">{esc(feat[:22])}</text>')
        for j in range(n):
            c = cells.get((feat, j))
            ratio = None
            if c is not None and c.get("statistic") is not None:
                ratio = _drift_ratio(c)
            x = label_w + j * cell
            cls = ' class="drifted"' if c is not None and c.get("drifted") else ""
            tip = (
                f"{feat} @ {columns[j]}: no value"
                if c is None
                else f"{feat} @ {columns[j]}: {c.get('method')} {_fmt(float(c['statistic']))}"
                f"{' (threshold ' + _fmt(float(c['threshold'])) + ')' if c.get('threshold') else ''}"
                f"{' DRIFTED' if c.get('drifted') else ''}"
                if c.get("statistic") is not None
                else f"{feat} @ {columns[j]}: {c.get('method')}"
            )
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 2}" width="{max(cell - 1, 1):.1f}" height="{row - 4}" '
                f'fill="{_heat(ratio)}"{cls}><title>{esc(tip)}</title></rect>'
            )
    y = len(features) * row + 14
    parts.append(f'<text x="{label_w}" y="{y}" class="tick">{esc(columns[0])}</text>')
    if n > 1:
        parts.append(
            f'<text x="{label_w + cell * n:.1f}" y="{y}" class="tick" text-anchor="end">{esc(columns[-1])}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


# ---------------------------------------------------------------------------------------------- lineage
NODE_W = 160
NODE_H = 36
GAP_X = 52
GAP_Y = 14


def layered(nodes: Sequence[Mapping[str, Any]], edges: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A layered (Sugiyama-style) layout: longest-path layers, then one barycenter pass to order each layer.

    Edges point forward in time, so the graph is acyclic; a cycle, should one appear, is broken where found.
    """
    ids = [str(n["id"]) for n in nodes]
    preds: dict[str, list[str]] = {i: [] for i in ids}
    succs: dict[str, list[str]] = {i: [] for i in ids}
    for e in edges:
        s, t = str(e["source"]), str(e["target"])
        if s in preds and t in preds and s != t:
            succs[s].append(t)
            preds[t].append(s)
    layer: dict[str, int] = {}
    visiting: set[str] = set()

    def depth(node: str) -> int:
        if node in layer:
            return layer[node]
        if node in visiting:  # a cycle: cut it here
            return 0
        visiting.add(node)
        d = max((depth(p) + 1 for p in preds[node]), default=0)
        visiting.discard(node)
        layer[node] = d
        return d

    for i in ids:
        depth(i)
    by_layer: dict[int, list[str]] = {}
    for i in ids:
        by_layer.setdefault(layer[i], []).append(i)

    def natural(node: str) -> tuple[str, int, str]:  # report 9 before report 10
        kind, _, ident = node.partition(":")
        return (kind, int(ident), "") if ident.isdigit() else (kind, 0, ident)

    order: dict[str, float] = {}
    for lay in sorted(by_layer):
        members = by_layer[lay]
        if lay == 0:
            members.sort(key=natural)
        else:
            members.sort(key=lambda n: (sum(order.get(p, 0.0) for p in preds[n]) / max(len(preds[n]), 1), *natural(n)))
        for k, n in enumerate(members):
            order[n] = float(k)
    tallest = max((len(m) for m in by_layer.values()), default=1)
    height = tallest * (NODE_H + GAP_Y) + GAP_Y
    placed = []
    info = {str(n["id"]): n for n in nodes}
    pos: dict[str, tuple[float, float]] = {}
    for lay, members in by_layer.items():
        offset = (height - len(members) * (NODE_H + GAP_Y) - GAP_Y) / 2
        for k, n in enumerate(members):
            x = 10 + lay * (NODE_W + GAP_X)
            y = offset + GAP_Y + k * (NODE_H + GAP_Y)
            pos[n] = (x, y)
            placed.append({**info[n], "layer": lay, "x": x, "y": y})
    placed.sort(key=lambda p: (p["layer"], p["y"]))
    width = 20 + (max(by_layer, default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    links = [
        {**e, "points": (pos[str(e["source"])], pos[str(e["target"])])}
        for e in edges
        if str(e["source"]) in pos and str(e["target"]) in pos
    ]
    return {"nodes": placed, "edges": links, "width": width, "height": height}


def lineage_svg(layout: Mapping[str, Any], start: str, hrefs: Mapping[str, str]) -> Markup:
    """The laid-out graph as SVG: each node a link to its page, edges as curves labelled with their kind."""
    w, h = layout["width"], layout["height"]
    parts = [
        f'<svg id="lineage" class="lineage" role="img" viewBox="0 0 {w:.0f} {h:.0f}" width="{w:.0f}" '
        f'height="{h:.0f}" aria-label="lineage graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>',
    ]
    for e in layout["edges"]:
        (sx, sy), (tx, ty) = e["points"]
        x1, y1 = sx + NODE_W, sy + NODE_H / 2
        x2, y2 = tx - 2, ty + NODE_H / 2
        mid = (x1 + x2) / 2
        parts.append(
            f'<path class="edge" data-source="{esc(e["source"])}" data-target="{esc(e["target"])}" '
            f'd="M {x1:.1f} {y1:.1f} C {mid:.1f} {y1:.1f}, {mid:.1f} {y2:.1f}, {x2:.1f} {y2:.1f}" '
            f'marker-end="url(#arrow)"><title>{esc(e["kind"])}</title></path>'
        )
    for n in layout["nodes"]:
        node_id = str(n["id"])
        kind = str(n.get("kind") or node_id.partition(":")[0])
        color = KIND_COLORS.get(kind, "#495057")
        cls = "node start" if node_id == start else "node"
        label = str(n.get("label") or node_id)
        title = str(n.get("title") or node_id)
        inner = (
            f'<rect x="{n["x"]:.1f}" y="{n["y"]:.1f}" width="{NODE_W}" height="{NODE_H}" rx="6" '
            f'stroke="{color}"/>'
            f'<rect x="{n["x"]:.1f}" y="{n["y"]:.1f}" width="6" height="{NODE_H}" rx="2" fill="{color}"/>'
            f'<text x="{n["x"] + 14:.1f}" y="{n["y"] + 14:.1f}" class="kind">{esc(kind)}</text>'
            f'<text x="{n["x"] + 14:.1f}" y="{n["y"] + 29:.1f}" class="label">{esc(label[:24])}</text>'
            f"<title>{esc(title)}</title>"
        )
        href = hrefs.get(node_id)
        if href:
            parts.append(f'<a href="{esc(href)}" class="{cls}" data-id="{esc(node_id)}">{inner}</a>')
        else:
            parts.append(f'<g class="{cls}" data-id="{esc(node_id)}">{inner}</g>')
    parts.append("</svg>")
    return Markup("".join(parts))
