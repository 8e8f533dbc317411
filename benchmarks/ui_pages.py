"""How fast the web UI's pages are on a big store: 10,000 runs and 1,000,000 logged predictions.

    .venv/bin/python benchmarks/ui_pages.py [--runs 10000] [--predictions 1000000] [--keep DIR] [--repeat 5]

The store starts as the UI tests' fixture (the whole loop, small: ``tests/ui/ui_site.py``), then gets
``--runs`` more runs (params, metrics, some with a metric history) over 20 experiments, and
``--predictions`` more prediction-log rows on ``churn-api`` in Parquet segments of 1,000 rows (what the
prediction log's 1-second rotation writes under 1,000 rows/s), one hour of per-version serving stats at 2-s
windows, and 300 stored monitor reports. Each page is then fetched over HTTP from a real uvicorn server on
loopback once to warm up (imports, template compilation), then ``--repeat`` times measured; the script
prints the median and the worst time per page (goal: < 300 ms).

``--keep DIR`` keeps the filled store in DIR and reuses it on the next run (filling takes a few minutes).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEGMENT_ROWS = 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fill_runs(store: Any, n: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    t0 = time.time() - n
    for i in range(n):
        rid = store.create_run(
            f"sweep-{i % 20:02d}",
            params={
                "C": f"{rng.choice([0.1, 0.3, 1.0, 3.0])}",
                "penalty": str(rng.choice(["l1", "l2"])),
                "seed": str(i),
            },
            tags={"owner": "bench"},
            seed=i,
            start_time=t0 + i,
        )
        steps = 10 if i % 10 == 0 else 1
        points = []
        for step in range(steps):
            points.append(("accuracy", float(rng.uniform(0.6, 0.95)), step, t0 + i + step))
            points.append(("loss", float(rng.uniform(0.1, 1.0)), step, t0 + i + step))
        store.log_batch(rid, metrics=points)
        store.end_run(rid, "FINISHED")
        if i and i % 2000 == 0:
            print(f"  {i:,} runs", flush=True)


def fill_predictions(store: Any, n: int, deployment: str = "churn-api") -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    segments = n // SEGMENT_ROWS
    start = time.time() - segments  # one segment a second, ending now
    writer = f"bench-{uuid.uuid4().hex[:8]}"
    for k in range(segments):
        requests = SEGMENT_ROWS // 10
        t = np.repeat(start + k + np.sort(rng.random(requests)), 10)
        version = np.where(rng.random(requests) < 0.9, 2, 3).repeat(10)
        table = pa.table(
            {
                "request_id": [f"{int(x * 1000):012x}{uuid.uuid4().hex[:20]}" for x in t[::10] for _ in range(10)],
                "row": np.tile(np.arange(10), requests),
                "time": t,
                "model": ["churn"] * SEGMENT_ROWS,
                "version": version,
                "route": np.where(version == 2, "primary", "canary"),
                "latency_ms": np.repeat(rng.gamma(2.0, 1.5, requests), 10),
                "inputs.tenure": rng.gamma(2.0, 12.0, SEGMENT_ROWS).round(2),
                "inputs.monthly_charges": rng.normal(70, 20, SEGMENT_ROWS).round(2),
                "inputs.support_calls": rng.poisson(2, SEGMENT_ROWS),
                "inputs.usage_gb": rng.lognormal(3, 0.5, SEGMENT_ROWS).round(2),
                "inputs.contract": rng.choice(["monthly", "one_year", "two_year"], SEGMENT_ROWS),
                "outputs.prediction": rng.integers(0, 2, SEGMENT_ROWS),
            }
        )
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        digest = store.artifacts.put_bytes(sink.getvalue())
        store.add_prediction_segment(deployment, digest, SEGMENT_ROWS, float(t.min()), float(t.max()), writer, k)
        if k and k % 200 == 0:
            print(f"  {k * SEGMENT_ROWS:,} predictions", flush=True)


def fill_stats_and_reports(store: Any, deployment: str = "churn-api") -> None:
    import numpy as np

    from stead.serving.health import BOUNDS

    rng = np.random.default_rng(2)
    now = time.time()
    rows = []
    for w in range(1800):
        end = now - 3600 + (w + 1) * 2
        for version, route, share in ((2, "primary", 0.9), (3, "canary", 0.1)):
            req = int(rng.poisson(200 * share))
            counts = list(rng.multinomial(req, [0.1, 0.3, 0.3, 0.2, 0.05, 0.03, 0.02] + [0.0] * (len(BOUNDS) - 6)))
            rows.append(
                {
                    "deployment": deployment,
                    "model": "churn",
                    "version": version,
                    "route": route,
                    "worker": "bench",
                    "window_start": end - 2,
                    "window_end": end,
                    "requests": req,
                    "errors_4xx": int(rng.poisson(0.05)),
                    "errors_5xx": int(rng.poisson(0.01)),
                    "latency": {"bounds": list(BOUNDS), "counts": [int(c) for c in counts]},
                }
            )
        if len(rows) >= 2000:
            store.add_serving_stats(rows)
            rows = []
    if rows:
        store.add_serving_stats(rows)
    features = ["tenure", "monthly_charges", "support_calls", "usage_gb", "contract"]
    for k in range(300):
        at = now - (300 - k) * 60
        columns = {
            f: {
                "method": "ks" if f != "contract" else "chi2",
                "statistic": float(rng.uniform(0, 0.2) + (0.15 if k > 200 and f == "support_calls" else 0)),
                "p_value": None,
                "threshold": 0.1,
                "drifted": bool(k > 200 and f == "support_calls"),
            }
            for f in features
        }
        report = {
            "window": {"rows": 1000, "start": at - 60, "end": at},
            "drift": {"columns": columns, "share": 0.2 if k > 200 else 0.0, "drifted": False, "threshold": 0.3},
            "performance": {"accuracy": float(rng.uniform(0.7, 0.8)), "labeled": 500, "label_coverage": 0.5},
            "estimated": {"accuracy": float(rng.uniform(0.7, 0.8))},
        }
        store.add_monitor_report(deployment, report, "churn", 2, at)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    import tempfile

    import httpx
    import uvicorn

    sys.path.insert(0, str(ROOT / "tests" / "ui"))
    os.environ.setdefault("STEAD_STATS_INTERVAL", "0.3")
    from ui_site import build_site  # the UI tests' fixture: the whole loop, small

    from stead.serving.app import create_app
    from stead.settings import Settings
    from stead.store import open_store
    from stead.ui import ui_routes

    folder = args.keep or Path(tempfile.mkdtemp(prefix="stead-ui-bench-"))
    marker = folder / "bench.json"
    if not marker.exists():
        started = time.perf_counter()
        gen = build_site(folder)
        site = next(gen)
        ids = {"run": site.run_id, "dataset": site.dataset_id}
        store = site.store
        print(f"filling {folder}: {args.runs:,} runs", flush=True)
        fill_runs(store, args.runs)
        print(f"{args.predictions:,} predictions", flush=True)
        fill_predictions(store, args.predictions)
        fill_stats_and_reports(store)
        for _ in gen:
            pass
        marker.write_text(json.dumps(ids))
        print(f"filled in {time.perf_counter() - started:.0f} s", flush=True)
    ids = json.loads(marker.read_text())
    settings = Settings.from_env({}, uri=str(folder / ".stead"))
    store = open_store(settings)
    counts = store.counts()
    logged = sum(s["rows"] for s in store.prediction_segments("churn-api"))
    print(f"store: {counts['runs']:,} runs, {logged:,} predictions on churn-api")
    store.close()
    port = _free_port()
    app = create_app(settings, extra_routes=ui_routes(settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    pages = [
        "/ui/",
        "/ui/runs",
        "/ui/runs?filter=metrics.accuracy+%3E+0.9&order_by=metrics.accuracy+DESC",
        "/ui/runs?experiment=sweep-03&order_by=params.C+ASC",
        f"/ui/runs/{ids['run']}",
        f"/ui/datasets/{ids['dataset']}",
        "/ui/models/churn",
        "/ui/deployments/churn-api",
        "/ui/lineage?ref=churn%40champion",
        "/ui/lineage?ref=deployment%3Achurn-api",
    ]
    worst_all = 0.0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        for _ in range(600):
            try:
                http.get("/v2/health/live")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise SystemExit("the server did not start within 30 s")
        for page in pages:  # the first request of each page imports its modules and compiles its template
            http.get(page)
        print(f"{'page':<72} {'median ms':>10} {'worst ms':>9}")
        for page in pages:
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                response = http.get(page)
                times.append((time.perf_counter() - t) * 1000)
                assert response.status_code == 200, (page, response.status_code, response.text[:300])
            worst_all = max(worst_all, max(times))
            print(f"{page:<72} {statistics.median(times):>10.0f} {max(times):>9.0f}")
    server.should_exit = True
    thread.join(timeout=30)
    # the deployment page with its segment cache cold (a server's first view of that page), in-process
    from stead.ui import views

    store = open_store(settings)
    cold = []
    for _ in range(args.repeat):
        views._SEGMENT_CACHE.clear()
        t = time.perf_counter()
        views.deployment_page(store, "churn-api")
        cold.append((time.perf_counter() - t) * 1000)
    store.close()
    worst_all = max(worst_all, max(cold))
    label = "deployment page data, segment cache cold (in-process)"
    print(f"{label:<72} {statistics.median(cold):>10.0f} {max(cold):>9.0f}")
    print(f"worst page: {worst_all:.0f} ms (goal < 300 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
