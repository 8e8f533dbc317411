"""What each page of the web UI shows, gathered from the store (layer: ui; reads only, no web framework).

Each function takes the store and returns plain dicts for the templates. They stay fast on big stores by
asking the store for pages and aggregates (``search_runs`` pages, ``serving_stats`` totals, the last
monitor reports) and by reading at most a few dozen of the prediction log's Parquet segments, only the
columns a chart needs, with pyarrow (see :func:`traffic`).
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from stead.entities import Deployment, Ref
from stead.errors import SteadError
from stead.ui.svg import drift_heatmap, histogram, layered, lineage_svg, top_values

__all__ = [
    "compare_page",
    "dataset_page",
    "deployment_page",
    "fmt_time",
    "lineage_page",
    "model_page",
    "node_href",
    "overview_page",
    "run_page",
    "runs_page",
    "traffic",
]

RUNS_PAGE = 50
MAX_COMPARE = 8
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg")
TEXT_EXT = (".txt", ".log", ".json", ".yaml", ".yml", ".md", ".csv", ".tsv", ".py", ".toml", ".ini", ".cfg", ".html")
PREVIEW_BYTES = 4096


def fmt_time(value: Any) -> str:
    """A timestamp (epoch seconds, datetime or ISO text) as ``YYYY-MM-DD HH:MM:SS`` UTC; ``-`` for None."""
    if value is None or value == "":
        return "-"
    when: datetime
    if isinstance(value, int | float):
        when = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return value
    elif isinstance(value, datetime):
        when = value
    else:
        return str(value)
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d\u00a0%H:%M:%S")  # no break inside a timestamp


def epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _finite(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def chart(
    x: Sequence[float], series: Mapping[str, Sequence[float | None]], *, time_axis: bool = True, **extra: Any
) -> dict[str, Any]:
    """A chart spec the page's script draws with uPlot: ``{"x": [...], "series": [{"label", "data"}], ...}``."""
    return {
        "x": [float(v) for v in x],
        "series": [{"label": k, "data": [_finite(v) for v in vs]} for k, vs in series.items()],
        "time": time_axis,
        **extra,
    }


# ------------------------------------------------------------------------------------------------ refs
def node_href(node: str, context: Mapping[str, str] | None = None) -> str | None:
    """The UI page of a lineage node (``kind:id``), or None when it has none of its own."""
    kind, _, ident = node.partition(":")
    context = context or {}
    if kind == "run":
        return f"/ui/runs/{ident}"
    if kind == "dataset":
        return f"/ui/datasets/{ident}"
    if kind == "version":
        name, _, number = ident.rpartition("/")
        return f"/ui/models/{name}#v{number}"
    if kind == "deployment":
        return f"/ui/deployments/{ident}"
    owner = context.get(node)
    if owner and kind in ("report", "alert", "rollout", "decision"):
        section = {"report": "drift", "alert": "alerts", "rollout": "rollouts", "decision": "rollouts"}[kind]
        return f"/ui/deployments/{owner}#{section}"
    if kind == "pipeline":
        return "/ui/#pipelines"
    return None


# ------------------------------------------------------------------------------------------------ overview
def _where_serving(deployments: Iterable[Deployment]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for d in deployments:
        for r in d.routes:
            out.setdefault(r.model, []).append(
                {"deployment": d.name, "version": r.version, "kind": r.kind, "weight": r.weight}
            )
    return out


def _live_shares(store: Any, deployment: str, since: float) -> list[dict[str, Any]]:
    """Requests per version since ``since`` (serving workers report every 2 s), with each one's share."""
    try:
        stats = store.serving_stats(deployment, since=since)
    except SteadError:
        return []
    rows = [s for s in stats if s["route"] != "shadow"]
    total = sum(int(s["requests"]) for s in rows) or 0
    return [
        {
            "version": s["version"],
            "route": s["route"],
            "requests": int(s["requests"]),
            "share": (int(s["requests"]) / total) if total else 0.0,
        }
        for s in rows
    ]


def overview_page(store: Any, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    deployments = store.list_deployments()
    serving = _where_serving(deployments)
    models = []
    for m in store.list_models():
        models.append({**m, "champion": m["aliases"].get("champion"), "serving": serving.get(m["name"], [])})
    deps = [{"d": d, "live": _live_shares(store, d.name, now - 300)} for d in deployments]
    return {
        "counts": store.counts(),
        "models": models,
        "deployments": deps,
        "alerts": store.list_alerts(open_only=True, limit=50),
        "pipelines": store.list_pipeline_runs(limit=10),
        "rollouts": store.list_rollouts(limit=10),
    }


# ------------------------------------------------------------------------------------------------ runs
def _split_cols(cols: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for c in cols:
        section, _, key = c.partition(".")
        if section in ("params", "metrics", "tags") and key:
            out.append((section, key))
    return out


def runs_page(
    store: Any,
    experiment: str | None,
    filter_text: str | None,
    order_by: str | None,
    cols: Sequence[str],
    page_token: str | None,
    per_page: int = RUNS_PAGE,
) -> dict[str, Any]:
    error = None
    runs: list[Any] = []
    next_token = None
    try:
        found = store.search_runs(
            experiment or None, filter_text or None, order_by or None, per_page, page_token or None
        )
        runs = list(found)
        next_token = found.next_page_token
    except SteadError as exc:
        error = exc
    params = sorted({k for r in runs for k in r.params})
    metrics = sorted({k for r in runs for k in r.metrics})
    chosen = _split_cols(cols)
    if not cols:
        chosen = [("metrics", k) for k in metrics[:5]] + [("params", k) for k in params[:3]]
    return {
        "runs": runs,
        "next_token": next_token,
        "error": error,
        "available": [("params", k) for k in params] + [("metrics", k) for k in metrics],
        "chosen": chosen,
        "experiments": store.list_experiments(),
    }


def compare_page(store: Any, ids: Sequence[str]) -> dict[str, Any]:
    runs = [store.get_run(i) for i in list(dict.fromkeys(ids))[:MAX_COMPARE]]
    rows = []
    for section in ("params", "metrics"):
        keys = sorted({k for r in runs for k in getattr(r, section)})
        for key in keys:
            values = [getattr(r, section).get(key) for r in runs]
            rows.append(
                {"section": section, "key": key, "values": values, "differs": len({repr(v) for v in values}) > 1}
            )
    charts = {}
    for key in sorted({k for r in runs for k in r.metrics})[:12]:
        histories = {r.id: store.get_metric_history(r.id, key) for r in runs if key in r.metrics}
        steps = sorted({p.step for h in histories.values() for p in h})
        if len(steps) < 2:
            continue
        series = {}
        for rid, h in histories.items():
            by_step = {p.step: p.value for p in h}
            series[rid[:8]] = [by_step.get(s) for s in steps]
        charts[key] = chart(steps, series, time_axis=False, xlabel="step")
    return {"runs": runs, "rows": rows, "charts": charts}


def _artifact_kind(name: str) -> str:
    lower = name.lower()
    if lower.endswith(IMAGE_EXT):
        return "image"
    if lower.endswith(TEXT_EXT):
        return "text"
    return "file"


def run_page(store: Any, run_id: str) -> dict[str, Any]:
    run = store.get_run(run_id)
    charts = {}
    singles = {}
    for key in sorted(run.metrics)[:30]:
        history = store.get_metric_history(run.id, key)
        if len(history) > 1:
            charts[key] = chart([p.step for p in history], {key: [p.value for p in history]}, time_axis=False)
        else:
            singles[key] = run.metrics[key]
    artifacts = []
    for name, digest in sorted(run.artifacts.items())[:200]:
        kind = _artifact_kind(name)
        item: dict[str, Any] = {"name": name, "digest": digest, "kind": kind, "size": None, "preview": None}
        try:
            item["size"] = store.artifacts.size(digest)
            if kind == "text":
                with store.artifacts.open(digest, name=name) as fh:
                    head = fh.read(PREVIEW_BYTES)
                item["preview"] = head.decode("utf-8", errors="replace")
                item["truncated"] = (item["size"] or 0) > PREVIEW_BYTES
        except (SteadError, OSError) as exc:
            item["problem"] = str(exc)
        artifacts.append(item)
    datasets = []
    for use in run.inputs:
        try:
            d = store.get_dataset(use.dataset_id)
            datasets.append({"use": use, "rows": d.rows, "columns": d.columns})
        except SteadError:
            datasets.append({"use": use, "rows": None, "columns": None})
    env = dict(run.env or {})
    packages = env.pop("packages", None)
    return {
        "run": run,
        "charts": charts,
        "singles": singles,
        "artifacts": artifacts,
        "datasets": datasets,
        "env": env,
        "packages": packages,
        "duration": (run.end_time - run.start_time).total_seconds() if run.end_time else None,
    }


# ------------------------------------------------------------------------------------------------ datasets
def _sample_rows(store: Any, digest: str | None, limit: int = 20) -> tuple[list[str], list[list[Any]]]:
    if not digest:
        return [], []
    import io

    import pyarrow.parquet as pq

    path = store.artifacts.local_path(digest)
    source: Any = str(path) if path is not None else io.BytesIO(store.artifacts.get_bytes(digest))
    reader = pq.ParquetFile(source)
    batch = next(reader.iter_batches(batch_size=limit), None)
    if batch is None:
        return list(reader.schema_arrow.names), []
    columns = batch.schema.names
    data = batch.to_pydict()
    return columns, [[data[c][i] for c in columns] for i in range(batch.num_rows)]


def dataset_page(store: Any, dataset_id: str) -> dict[str, Any]:
    d = store.get_dataset(dataset_id)
    columns = []
    for name, p in (d.profile.get("columns") or {}).items():
        chart_svg = None
        kind = p.get("kind")
        if kind == "numeric" and (p.get("histogram") or {}).get("edges"):
            chart_svg = histogram(p["histogram"]["edges"], p["histogram"]["counts"])
        elif kind in ("categorical", "bool") and p.get("top"):
            chart_svg = top_values(p["top"], int(p.get("other") or 0))
        columns.append({"name": name, "p": p, "chart": chart_svg})
    try:
        sample_cols, sample = _sample_rows(store, d.sample_digest)
    except (SteadError, OSError, ValueError):
        sample_cols, sample = [], []
    return {
        "d": d,
        "columns": columns,
        "usage": store.dataset_usage(d.id),
        "sample_cols": sample_cols,
        "sample": sample,
    }


# ------------------------------------------------------------------------------------------------ models
def model_page(store: Any, name: str) -> dict[str, Any]:
    versions = store.list_model_versions(name)
    if not versions:
        store.get_model_version(name, 1)  # raises NotFoundError naming the known models
    serving = _where_serving(store.list_deployments()).get(name, [])
    by_version: dict[int, list[dict[str, Any]]] = {}
    for s in serving:
        by_version.setdefault(int(s["version"]), []).append(s)
    aliases = {a: v.version for v in versions for a in v.aliases}
    return {
        "name": name,
        "versions": versions,
        "serving": by_version,
        "aliases": dict(sorted(aliases.items())),
        "alias_history": list(reversed(store.alias_history(name, limit=200))),
        "audit": list(reversed(store.audit_log(f"model:{name}/", limit=200))),
    }


# ------------------------------------------------------------------------------------------------ lineage
COLLAPSE_OVER = 6  # siblings of one kind under one parent beyond this are folded into one "+N" node


def _collapse(nodes: list[dict[str, Any]], edges: list[dict[str, Any]], keep: str) -> tuple[list[Any], list[Any]]:
    """Fold leaf children of one kind (monitor reports, hold decisions …) into one node when there are many."""
    out_degree: dict[str, int] = {}
    for e in edges:
        out_degree[e["source"]] = out_degree.get(e["source"], 0) + 1
    groups: dict[tuple[str, str], list[str]] = {}
    in_degree: dict[str, int] = {}
    for e in edges:
        in_degree[e["target"]] = in_degree.get(e["target"], 0) + 1
    for e in edges:
        t = e["target"]
        if out_degree.get(t, 0) == 0 and in_degree.get(t, 0) == 1 and t != keep:
            groups.setdefault((e["source"], t.partition(":")[0]), []).append(t)
    drop: set[str] = set()
    extra_nodes = []
    extra_edges = []
    for (parent, kind), members in groups.items():
        if len(members) <= COLLAPSE_OVER:
            continue

        def number(node: str) -> tuple[int, str]:
            ident = node.partition(":")[2]
            return (int(ident), "") if ident.isdigit() else (0, ident)

        members.sort(key=number)
        folded = members[: len(members) - (COLLAPSE_OVER - 1)]
        drop.update(folded)
        more = f"more:{parent}:{kind}"
        extra_nodes.append(
            {"id": more, "kind": "more", "label": f"+{len(folded)} {kind}s", "title": f"{len(folded)} older {kind}s"}
        )
        extra_edges.append({"source": parent, "target": more, "kind": kind})
    nodes = [n for n in nodes if n["id"] not in drop] + extra_nodes
    edges = [e for e in edges if e["target"] not in drop] + extra_edges
    return nodes, edges


def lineage_page(store: Any, ref: str, direction: str = "both", depth: int = 10) -> dict[str, Any]:
    from stead.lineage import build_graph

    graph = build_graph(store, Ref.parse(ref), direction, depth)
    start = graph.nodes[0]["id"] if graph.nodes else ""
    nodes = [dict(n) for n in graph.nodes]
    edges = [dict(e) for e in graph.edges]
    total = len(nodes)
    nodes, edges = _collapse(nodes, edges, start)
    for n in nodes:  # the kind is shown above the label already
        kind = str(n.get("kind"))
        label = str(n.get("label") or "")
        if label.startswith(kind + " "):
            n["label"] = label[len(kind) + 1 :]
    owner: dict[str, str] = {}
    for e in graph.edges:  # which deployment a report, alert or rollout belongs to, for its link
        s, t = e["source"], e["target"]
        if s.startswith("deployment:"):
            owner[t] = s.partition(":")[2]
    for _ in range(3):
        for e in graph.edges:
            if e["source"] in owner and e["target"] not in owner:
                owner[e["target"]] = owner[e["source"]]
    rollouts = {r["id"]: r["deployment"] for r in store.list_rollouts(limit=200)}
    for n in nodes:
        kind, _, ident = str(n["id"]).partition(":")
        if kind == "rollout" and ident in rollouts:
            owner[n["id"]] = rollouts[ident]
    for e in graph.edges:
        if e["source"].startswith("rollout:") and e["source"] in owner:
            owner.setdefault(e["target"], owner[e["source"]])
    hrefs = {str(n["id"]): h for n in nodes if (h := node_href(str(n["id"]), owner))}
    layout = layered(nodes, edges)
    return {
        "ref": ref,
        "start": start,
        "svg": lineage_svg(layout, start, hrefs),
        "nodes": len(nodes),
        "total": total,
        "edges": len(edges),
        "direction": direction,
        "kinds": sorted({str(n.get("kind")) for n in nodes}),
    }


def lineage_suggestions(store: Any) -> list[str]:
    refs: list[str] = []
    for m in store.list_models():
        refs.extend(f"{m['name']}@{a}" for a in sorted(m["aliases"]))
        if m.get("latest_version"):
            refs.append(f"{m['name']}/{m['latest_version']}")
    refs.extend(f"deployment:{d.name}" for d in store.list_deployments())
    return refs[:20]


# ------------------------------------------------------------------------------------------------ deployments
def quantile_ms(latency: Mapping[str, Sequence[float]], q: float) -> float | None:
    """A quantile of a latency histogram (bounds in seconds), as the upper bound of its bucket, in ms.

    >>> quantile_ms({"bounds": [0.001, 0.005, 0.01], "counts": [50, 49, 1]}, 0.5)
    1.0
    """
    bounds = list(latency.get("bounds") or [])
    counts = list(latency.get("counts") or [])
    total = sum(counts)
    if not total or not bounds:
        return None
    seen = 0.0
    for i, c in enumerate(counts):
        seen += c
        if seen >= q * total:
            return float(bounds[min(i, len(bounds) - 1)]) * 1000.0
    return float(bounds[-1]) * 1000.0


def _stats_table(store: Any, deployment: str, since: float, seconds: float) -> list[dict[str, Any]]:
    out = []
    for s in store.serving_stats(deployment, since=since):
        req = int(s["requests"])
        errors = int(s["errors_5xx"])
        out.append(
            {
                "version": s["version"],
                "route": s["route"],
                "requests": req,
                "rate": req / seconds,
                "errors_4xx": int(s["errors_4xx"]),
                "errors_5xx": errors,
                "error_rate": errors / req if req else None,
                "p50": quantile_ms(s["latency"], 0.5),
                "p99": quantile_ms(s["latency"], 0.99),
            }
        )
    return out


def _read_segment(store: Any, digest: str, columns: Sequence[str] | None = None) -> Any:
    import io

    import pyarrow.parquet as pq

    path = store.artifacts.local_path(digest)
    source: Any = str(path) if path is not None else io.BytesIO(store.artifacts.get_bytes(digest))
    if columns is None:
        return pq.read_table(source)
    return pq.read_table(source, columns=list(columns))


_SEGMENT_CACHE: OrderedDict[str, Any] = OrderedDict()
_SEGMENT_CACHE_SIZE = 512  # segments are content-addressed, so a digest's columns never change
_SEGMENT_LOCK = threading.Lock()


def _traffic_columns(store: Any, digest: str) -> Any:
    """The ``time``, ``row``, ``version`` and ``latency_ms`` columns of one segment, cached by its digest."""
    with _SEGMENT_LOCK:
        found = _SEGMENT_CACHE.get(digest)
        if found is not None:
            _SEGMENT_CACHE.move_to_end(digest)
            return found
    table = _read_segment(store, digest, ("time", "row", "version", "latency_ms"))
    with _SEGMENT_LOCK:
        _SEGMENT_CACHE[digest] = table
        while len(_SEGMENT_CACHE) > _SEGMENT_CACHE_SIZE:
            _SEGMENT_CACHE.popitem(last=False)
    return table


def sample_segments(segments: Sequence[Mapping[str, Any]], buckets: int, edges: Sequence[float]) -> list[int]:
    """Indices of the segments to read: the newest one whose middle falls in each time bucket.

    >>> segs = [{"min_time": t, "max_time": t + 1} for t in range(10)]
    >>> sample_segments(segs, 2, [0.0, 5.5, 11.0])
    [4, 9]
    """
    chosen: dict[int, int] = {}
    for i, seg in enumerate(segments):
        middle = (float(seg["min_time"]) + float(seg["max_time"])) / 2
        b = min(max(bisect_right(edges, middle) - 1, 0), buckets - 1)
        chosen[b] = i
    return sorted(set(chosen.values()))


def traffic(
    store: Any,
    deployment: str,
    buckets: int = 24,
    window: float = 86_400.0,
    segments: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Predictions per minute and p50/p99 latency per version over the prediction log's last ``window`` seconds.

    Never reads the whole log: how many rows each time bucket holds comes from the segment index alone, and
    one segment per bucket (the newest whose middle falls in it; ``buckets`` reads at most, in a few threads,
    only the ``time``, ``row``, ``version`` and ``latency_ms`` columns) gives the versions' shares of that
    bucket and its latency percentiles (one value per request).
    """
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import pyarrow as pa

    everything = store.prediction_segments(deployment) if segments is None else segments
    total_rows = sum(int(seg["rows"]) for seg in everything)
    if not everything:
        return {"requests": None, "latency": None, "read": 0, "segments": 0, "total_rows": 0}
    newest = max(float(seg["max_time"]) for seg in everything)
    segs = [seg for seg in everything if float(seg["max_time"]) >= newest - window]
    lo = min(float(seg["min_time"]) for seg in segs)
    hi = max(float(seg["max_time"]) for seg in segs)
    span = max(hi - lo, 1.0)
    edges = list(np.linspace(lo, lo + span * (1 + 1e-9), buckets + 1))
    width_min = span / buckets / 60.0
    rows_in = np.zeros(buckets)
    for seg in segs:
        middle = (float(seg["min_time"]) + float(seg["max_time"])) / 2
        rows_in[min(max(bisect_right(edges, middle) - 1, 0), buckets - 1)] += int(seg["rows"])
    picked = sample_segments(segs, buckets, edges)
    with ThreadPoolExecutor(max_workers=4) as pool:  # pyarrow reads without the GIL
        tables = list(pool.map(lambda i: _traffic_columns(store, segs[i]["digest"]), picked))
    table = pa.concat_tables(tables, promote_options="default")
    t = table["time"].to_numpy().astype(float)
    version = table["version"].to_numpy().astype(int)
    first = table["row"].to_numpy() == 0
    latency = table["latency_ms"].to_numpy().astype(float)
    index = np.clip(np.searchsorted(np.asarray(edges), t, side="right") - 1, 0, buckets - 1)
    sampled = np.bincount(index, minlength=buckets).astype(float)
    centers = [(edges[i] + edges[i + 1]) / 2 for i in range(buckets)]
    rate: dict[str, list[float | None]] = {}
    p50: dict[str, list[float | None]] = {}
    p99: dict[str, list[float | None]] = {}
    for v in sorted(set(version.tolist())):
        mine = version == v
        share = np.bincount(index[mine], minlength=buckets) / np.maximum(sampled, 1)
        rate[f"v{v}"] = [
            float(rows_in[b] * share[b] / width_min) if sampled[b] else (0.0 if not rows_in[b] else None)
            for b in range(buckets)
        ]
        req = mine & first
        order = np.lexsort((latency[req], index[req]))
        idx_sorted, lat_sorted = index[req][order], latency[req][order]
        starts = np.searchsorted(idx_sorted, np.arange(buckets), side="left")
        ends = np.searchsorted(idx_sorted, np.arange(buckets), side="right")
        count = ends - starts
        has = count > 0
        at50 = np.where(has, starts + np.floor((count - 1) * 0.50).astype(int), 0)
        at99 = np.where(has, starts + np.floor((count - 1) * 0.99).astype(int), 0)
        values = lat_sorted if len(lat_sorted) else np.zeros(1)
        p50[f"v{v} p50"] = [float(values[at50[b]]) if has[b] else None for b in range(buckets)]
        p99[f"v{v} p99"] = [float(values[at99[b]]) if has[b] else None for b in range(buckets)]
    return {
        "requests": chart(centers, rate, ylabel="predictions / min"),
        "latency": chart(centers, {**p50, **p99}, ylabel="ms", dashed=list(p99)),
        "read": len(picked),
        "segments": len(segs),
        "total_rows": total_rows,
        "span": span,
    }


def recent_predictions(
    store: Any, deployment: str, limit: int = 15, segments: Sequence[Mapping[str, Any]] | None = None
) -> tuple[list[str], list[dict[str, Any]]]:
    """The newest ``limit`` logged predictions, newest first, with their labels: reads the newest segments only."""
    import pyarrow as pa

    if segments is None:
        segments = store.prediction_segments(deployment)
    tables = []
    rows = 0
    for seg in reversed(segments[-50:]):
        tables.append(_read_segment(store, seg["digest"]))
        rows += int(seg["rows"])
        if rows >= limit:
            break
    if not tables:
        return [], []
    table = pa.concat_tables(tables, promote_options="default").sort_by([("time", "descending"), ("row", "ascending")])
    newest = table.slice(0, limit).to_pylist()
    labels = store.get_feedback(deployment, sorted({r["request_id"] for r in newest}))
    per_request: dict[str, int] = {}
    for r in newest:
        per_request[r["request_id"]] = per_request.get(r["request_id"], 0) + 1
    for r in newest:
        label = labels.get(r["request_id"])
        if isinstance(label, list) and r.get("row") is not None and int(r["row"]) < len(label):
            label = label[int(r["row"])]
        r["label"] = label
    columns = ["request_id", "time", "version", "route", "latency_ms", "label"]
    columns += [c for c in table.column_names if c.startswith(("inputs.", "outputs."))]
    return columns, newest


def _drift(store: Any, deployment: str, reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The heatmap (features x the last reports) and the drifted share over time."""
    columns = [fmt_time(r["at"])[5:16] for r in reports]
    position = {r["id"]: i for i, r in enumerate(reports)}
    cells: dict[tuple[str, int], dict[str, Any]] = {}
    features: list[str] = []
    for r in reports:
        cols = ((r.get("report") or {}).get("drift") or {}).get("columns") or {}
        for feat, c in cols.items():
            if feat not in features:
                features.append(feat)
            cells[(feat, position[r["id"]])] = c
    share = chart(
        [float(r["at"]) for r in reports],
        {"drifted share": [r.get("drift_share") for r in reports]},
        ylabel="share of features",
    )
    pred = chart(
        [float(r["at"]) for r in reports],
        {
            "prediction drift": [
                ((r.get("report") or {}).get("prediction_drift") or {}).get("statistic") for r in reports
            ]
        },
    )
    has_pred = any(v is not None for v in pred["series"][0]["data"])
    return {
        "heatmap": drift_heatmap(features, columns, cells),
        "share": share if reports else None,
        "prediction": pred if has_pred else None,
    }


def _performance(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Realized (labelled rows) and estimated performance per metric over the stored reports."""
    xs = [float(r["at"]) for r in reports]
    realized: dict[str, list[Any]] = {}
    estimated: dict[str, list[Any]] = {}
    coverage: list[Any] = []
    for i, r in enumerate(reports):
        body = r.get("report") or {}
        perf = body.get("performance") or {}
        for k, v in perf.items():
            if k in ("labeled", "label_coverage") or isinstance(v, dict | list):
                continue
            realized.setdefault(k, [None] * len(reports))[i] = v
        for k, v in (body.get("estimated") or {}).items():
            if not isinstance(v, dict | list):
                estimated.setdefault(k, [None] * len(reports))[i] = v
        coverage.append(perf.get("label_coverage"))
    charts = {}
    for metric in sorted(set(realized) | set(estimated)):
        series: dict[str, list[Any]] = {}
        if metric in realized and any(v is not None for v in realized[metric]):
            series[f"{metric} realized"] = realized[metric]
        if metric in estimated and any(v is not None for v in estimated[metric]):
            series[f"{metric} estimated"] = estimated[metric]
        if series:
            charts[metric] = chart(xs, series, dashed=[k for k in series if k.endswith("estimated")])
    return {"charts": charts, "coverage": coverage[-1] if coverage else None}


def evidence_rows(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A canary decision's evidence as reasons and rows of (measure, canary, primary, note) for a small table."""
    body = stored.get("evidence") if isinstance(stored.get("evidence"), Mapping) else stored
    assert isinstance(body, Mapping)
    reasons = list(stored.get("reasons") or body.get("reasons") or [])
    canary, primary = body.get("canary") or {}, body.get("primary") or {}
    rows: list[tuple[str, Any, Any, str]] = []
    if canary or primary:
        rows.append(("requests", canary.get("requests"), primary.get("requests"), ""))
        rows.append(("errors", canary.get("errors"), primary.get("errors"), ""))
    er = body.get("error_rate")
    if isinstance(er, Mapping):
        p = er.get("p_value")
        rows.append(("error rate", er.get("canary"), er.get("primary"), "" if p is None else f"p = {p:.3g}"))
    lat = body.get("p99_ms")
    if isinstance(lat, Mapping):
        rows.append(("p99 latency (ms)", lat.get("canary"), lat.get("primary"), ""))
    metric = body.get("metric")
    if isinstance(metric, Mapping):
        note = metric.get("source") or ""
        if metric.get("labels"):
            note += f", labels {metric['labels']}"
        if metric.get("p_value") is not None:
            note += f", p = {metric['p_value']:.3g}"
        rows.append((str(metric.get("name") or "metric"), metric.get("canary"), metric.get("primary"), note))
    if body.get("prediction_drift") is not None:
        rows.append(("prediction drift (JS)", body.get("prediction_drift"), None, "canary vs primary"))
    return {"reasons": reasons, "rows": rows}


def deployment_page(store: Any, name: str, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    d = store.get_deployment(name, history=30)
    rollouts = store.list_rollouts(name, limit=5)
    for r in rollouts:
        r["decisions"] = [
            {**c, "shown": evidence_rows(c.get("evidence") or {})}
            for c in store.canary_decisions(rollout_id=r["id"])[-30:]
        ]
    reports = store.list_monitor_reports(name, limit=60)
    try:
        stats_5m = _stats_table(store, name, now - 300, 300)
    except SteadError:
        stats_5m = []
    segments = store.prediction_segments(name)  # the log's index, oldest first: one query for both readers
    try:
        flow = traffic(store, name, segments=segments)
    except (SteadError, OSError, KeyError, ValueError) as exc:
        flow = {"requests": None, "latency": None, "problem": str(exc)}
    try:
        recent_cols, recent_rows = recent_predictions(store, name, segments=segments)
    except (SteadError, OSError, KeyError, ValueError):
        recent_rows, recent_cols = [], []
    latest = reports[-1] if reports else None
    return {
        "d": d,
        "primary": next((r for r in d.routes if r.kind == "primary"), None),
        "candidate": next((r for r in d.routes if r.kind in ("canary", "ab")), None),
        "rollouts": rollouts,
        "stats_5m": stats_5m,
        "traffic": flow,
        "drift": _drift(store, name, reports),
        "performance": _performance(reports),
        "latest": latest,
        "reports": len(reports),
        "alerts": store.list_alerts(open_only=False, deployment=name, limit=50),
        "recent": recent_rows,
        "recent_cols": recent_cols,
    }
