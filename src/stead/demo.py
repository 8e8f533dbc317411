"""``stead demo``: the whole loop on generated data, start to finish, with no human step (layer: demo).

In a fresh folder, on the embedded default:

1. generate a churn-like stream whose inputs and churn rule change at a known customer;
2. train v1 through the pipeline (gates), deploy it, make it champion;
3. serve the stream through the real HTTP server, with labels arriving late, while the data feed keeps the
   model's data file to the most recent labelled customers (until the retrained version has served 2,000);
4. the controller (a thread, as in ``stead serve``) computes monitor reports and raises a drift alert; the
   drift trigger retrains at once, and the performance trigger again once late labels show the drop;
5. each candidate is gated against the champion on the same fresh holdout, canaried 10/50/100 by automatic
   canary analysis (which may roll it back), and the good one is promoted;
6. a deliberately bad candidate is trained and rejected by a gate.

It prints a live timeline, then a summary measured from the store and the traffic.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stead.errors import MissingDependency

__all__ = ["make_stream", "run_demo"]

FEATURES = ["tenure", "monthly_charges", "support_calls", "usage_gb", "contract"]
DRIFT_AT = 4_000
TOTAL = 24_000  # the stream's length; traffic stops earlier, AFTER_RECOVERY customers after the promotion
AFTER_RECOVERY = 2_000
INITIAL = 1_500  # customers in the first training data
BATCH = 10  # customers per prediction request
LABEL_LAG = 300  # customers between a prediction and the arrival of its label
LABEL_BATCH = 10  # labels sent together in one feedback request
FEED = 1_200  # the data feed keeps this many most recent labelled customers

TRAIN_PY = '''\
"""The demo's training function: stead run churn calls train(ctx) with the training split."""

from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = ["tenure", "monthly_charges", "support_calls", "usage_gb"]


def train(ctx):
    y = ctx.y
    if ctx.params.get("corrupt"):  # the deliberately bad candidate: trained on inverted labels
        y = 1 - y
    prep = ColumnTransformer(
        [("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"), ["contract"])]
    )
    model = Pipeline([("prep", prep), ("model", LogisticRegression(C=float(ctx.params.get("C", 1.0)), max_iter=500))])
    return model.fit(ctx.X, y)
'''

STEAD_YAML = """\
# The demo project: one model, gated, deployed with canary analysis, monitored, retrained on drift.
project: churn-demo
models:
  churn:
    train: train.py:train
    data: data/churn.parquet       # the data feed keeps the most recent labelled customers here
    target: churned
    task: classification
    holdout: 0.25
    gates:
      - {metric: accuracy, min: 0.6}
      - {metric: accuracy, vs_champion: 0.01}
    deploy:
      deployment: churn-api
      rollout: [10, 50, 100]
      rollout_when_failing: [50, 100]  # when the champion has crossed its own accuracy floor
      analysis: {min_requests: 10, max_error_rate: 0.01, max_metric_drop: 0.05}
    monitor:
      window: 400
      drift: {threshold: 0.3}
      performance: {metric: accuracy, min: 0.6}
    retrain:
      on: [drift, performance]       # drift fires first; once late labels show the accuracy drop, retrain again
      cooldown: 5s
      after_alert: {min_labels: 150, data: feedback}   # train on labelled traffic served since the alert
"""


def make_stream(n: int, drift_at: int, seed: int = 0, width: int = 0) -> Any:
    """A churn-like stream: numeric and categorical features, a label, and a shift at ``drift_at``.

    After the drift point customers call support more, use more data and move to monthly contracts, and
    the churn rule changes with them (concept drift), so a model trained before the drift degrades. With
    ``width`` the drift is gradual: the share of customers who follow the new world grows linearly from 0
    at ``drift_at`` to 1 at ``drift_at + width``.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    index = np.arange(n)
    if width > 0:
        share = np.clip((index - drift_at) / width, 0.0, 1.0)
        after = rng.random(n) < share
    else:
        after = index >= drift_at
    tenure = rng.gamma(2.0, 12.0, n)
    charges = rng.normal(70, 20, n)
    calls = rng.poisson(np.where(after, 3.5, 1.5))
    usage = rng.lognormal(np.where(after, 3.3, 3.0), 0.5, n)
    monthly = rng.random(n) < np.where(after, 0.75, 0.45)
    contract = np.where(monthly, "monthly", rng.choice(["one_year", "two_year"], n))
    before_rule = -1.0 - 0.06 * tenure + 0.02 * (charges - 70) + 0.9 * calls + 1.2 * monthly
    after_rule = 1.5 - 0.02 * tenure + 0.06 * (usage - 27) - 0.5 * calls - 1.0 * monthly
    logit = np.where(after, after_rule, before_rule)
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "tenure": tenure.round(2),
            "monthly_charges": charges.round(2),
            "support_calls": calls,
            "usage_gb": usage.round(2),
            "contract": contract,
            "churned": churned,
        }
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Timeline:
    def __init__(self, say: Any) -> None:
        self.start = time.monotonic()
        self.say = say
        self.sent = 0
        self.lock = threading.Lock()

    def __call__(self, message: str) -> None:
        with self.lock:
            self.say(f"[{time.monotonic() - self.start:6.1f}s  customer {self.sent:>5}] {message}")


@dataclass(frozen=True)
class LoopConfig:
    """One run of the loop: the stream, when it drifts (abruptly, or over ``width`` customers), and when to stop."""

    total: int = TOTAL
    drift_at: int = DRIFT_AT
    width: int = 0
    seed: int = 42
    after_recovery: int | None = AFTER_RECOVERY  # None: serve the whole stream
    rate: float | None = None  # customers per second; None: each request as soon as the last is answered
    project_yaml: str = STEAD_YAML  # the stead.yaml the loop runs under (its policies)


@dataclass
class LoopResult:
    folder: Path
    stream: Any
    served: list[tuple[int, int, int]]
    failed: int
    detected_at: int | None
    promoted_at: int | None
    false_alarms: int
    started: float


def run_loop(folder: Path, config: LoopConfig = LoopConfig(), say: Any = None) -> LoopResult:
    """Run the closed loop in ``folder`` (its store is made anew) and return what happened, measured."""
    try:
        import sklearn  # noqa: F401
    except ModuleNotFoundError as exc:
        raise MissingDependency(
            "stead demo trains scikit-learn models, which are not installed", hint="pip install 'stead[sklearn]'"
        ) from exc
    import httpx
    import numpy as np
    import uvicorn

    from stead.project import load_project
    from stead.retraining.controller import Controller
    from stead.retraining.pipeline import run_pipeline
    from stead.serving.app import create_app
    from stead.settings import Settings
    from stead.store import open_store

    say = say or (lambda _line: None)
    started = time.monotonic()
    folder = folder.resolve()
    if (folder / ".stead").exists():
        import shutil

        shutil.rmtree(folder / ".stead")
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text(TRAIN_PY)
    (folder / "stead.yaml").write_text(config.project_yaml)
    settings = Settings.from_env(uri=str(folder / ".stead"))
    store = open_store(settings)
    timeline = _Timeline(say)
    say(f"[bold]stead demo[/] in {folder} (store {settings.uri})")

    stream = make_stream(config.total, drift_at=config.drift_at, seed=config.seed, width=config.width)
    features = stream[FEATURES]
    data_file = folder / "data" / "churn.parquet"
    stream.iloc[:INITIAL].to_parquet(data_file, index=False)
    how = f"over {config.width:,} customers" if config.width else "at once"
    timeline(
        f"generated a stream of customers; their inputs and churn rule change {how} at customer {config.drift_at:,}"
    )

    project = load_project(folder / "stead.yaml")
    first = run_pipeline(store, project, "churn", reason="first version")
    timeline(f"v{first.version}: accuracy {first.metrics.get('accuracy') or 0:.3f} on the holdout; {first.rollout}")

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    server_thread = threading.Thread(target=server.run, name="stead-demo-server", daemon=True)
    server_thread.start()
    stop = threading.Event()
    controller = Controller(
        open_store(settings), folder / "stead.yaml", echo=lambda line: timeline(f"controller: {line}")
    )
    controller_thread = threading.Thread(
        target=controller.run, kwargs={"interval": 1.0, "stop": stop}, name="stead-demo-controller", daemon=True
    )
    base = f"http://127.0.0.1:{port}"
    failed = 0
    served: list[tuple[int, int, int]] = []  # (customer, version, correct)
    detected_at: int | None = None
    promoted_at: int | None = None
    false_alarms = 0
    with httpx.Client(base_url=base, timeout=30) as http:
        for _ in range(100):
            try:
                if http.get("/v2/health/live").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        timeline(f"serving churn-api on {base}; the controller watches it (monitors, triggers, rollouts)")
        controller_thread.start()

        pending: deque[tuple[str, list[int]]] = deque()
        labelled: deque[int] = deque(maxlen=FEED)
        feed_written_at = 0
        seen_alerts: set[int] = set()
        paced_from = time.monotonic()
        for n, start in enumerate(range(INITIAL, config.total, BATCH)):
            if (
                config.after_recovery is not None
                and promoted_at is not None
                and start >= promoted_at + config.after_recovery
            ):
                break
            rows = list(range(start, min(start + BATCH, config.total)))
            if start == config.drift_at:
                timeline("[bold]the world starts to change here[/] (customer behaviour and the churn rule)")
            body = {"instances": features.iloc[rows].to_dict(orient="records")}
            response = http.post("/v1/deployments/churn-api/predict", json=body)
            timeline.sent = rows[-1] + 1
            if response.status_code != 200:
                failed += 1
                continue
            answer = response.json()
            truth = stream["churned"].iloc[rows].to_numpy()
            predicted = np.asarray(answer["predictions"])
            for row, ok in zip(rows, predicted == truth, strict=True):
                served.append((row, int(answer["version"]), int(ok)))
            pending.append((answer["request_id"], rows))
            if len(pending) >= LABEL_LAG // BATCH + LABEL_BATCH:  # labels arrive LABEL_LAG customers later
                items = []
                for _ in range(LABEL_BATCH):
                    request_id, label_rows = pending.popleft()
                    labels = [int(v) for v in stream["churned"].iloc[label_rows]]
                    items.append({"request_id": request_id, "label": labels if BATCH > 1 else labels[0]})
                    labelled.extend(label_rows)
                http.post("/v1/deployments/churn-api/feedback", json=items)
            if len(labelled) >= FEED // 2 and timeline.sent - feed_written_at >= 200:
                stream.iloc[sorted(labelled)].to_parquet(data_file, index=False)  # the data feed lands new data
                feed_written_at = timeline.sent
            if n % 10 == 0:  # what the store says happened, and when (in customers served)
                for alert in store.list_alerts(open_only=False, deployment="churn-api"):
                    if alert.rule != "drift_share" or alert.id in seen_alerts:
                        continue
                    seen_alerts.add(alert.id)
                    if timeline.sent <= config.drift_at:
                        false_alarms += 1
                    elif detected_at is None:
                        detected_at = timeline.sent
                if promoted_at is None and store.list_rollouts("churn-api", status="promoted"):
                    promoted_at = timeline.sent
            if config.rate:
                time.sleep(max(0.0, paced_from + (timeline.sent - INITIAL) / config.rate - time.monotonic()))
            else:
                time.sleep(0.004)
    stop.set()
    controller_thread.join(timeout=60)
    server.should_exit = True
    server_thread.join(timeout=30)
    return LoopResult(folder, stream, served, failed, detected_at, promoted_at, false_alarms, started)


def run_demo(folder: Path, echo: Any = None) -> int:
    """Run the demo in ``folder`` (a fresh store each time) and return 0."""
    from rich.console import Console

    from stead.project import load_project
    from stead.retraining.pipeline import run_pipeline
    from stead.settings import Settings
    from stead.store import open_store

    console = Console(highlight=False)
    say = echo or console.print
    result = run_loop(folder, LoopConfig(), say)
    store = open_store(Settings.from_env(uri=str(result.folder / ".stead")))
    timeline = _Timeline(say)
    timeline.start = time.monotonic() - (time.monotonic() - result.started)
    timeline.sent = max((row for row, _v, _ok in result.served), default=0) + 1
    timeline("a deliberately bad candidate: trained on inverted labels")
    bad = run_pipeline(
        store, load_project(result.folder / "stead.yaml"), "churn", params={"corrupt": True}, reason="bad"
    )
    failing = [g["reasons"] for g in bad.gate_results if not g["passed"]]
    timeline(f"v{bad.version} {'approved' if bad.approved else 'rejected'}: {failing[0] if failing else ''}")
    report = _html_report(store, result.folder / "report.html")

    summary = _summary(store, result)
    say("")
    say("[bold]summary[/] (measured from the traffic and the store)")
    for key, value in summary.items():
        say(f"{key}: {value}")
    say("")
    say(f"explore: cd {result.folder} && stead lineage churn@champion && stead deployments show churn-api")
    if report is not None:
        say(f"         open {report} (drift, performance and alerts over time)")
    return 0


def _html_report(store: Any, path: Path) -> Path | None:
    """The self-contained monitoring report of the demo's deployment, left to explore."""
    from stead.client import Client
    from stead.monitoring.html import render_html

    client = Client(settings=store.settings)
    try:
        report = client.monitor("churn-api")
    except Exception:  # the report is a convenience at the end; the demo's result does not depend on it
        return None
    path.write_text(
        render_html(
            report,
            drift_history=client.drift_history("churn-api"),
            reports=client.store.list_monitor_reports("churn-api", 200, False),
            alerts=[a.model_dump(mode="json") for a in client.list_alerts(False, "churn-api")],
        ),
        encoding="utf-8",
    )
    return path


def _accuracy(served: list[tuple[int, int, int]], lo: int, hi: int) -> float | None:
    window = [ok for row, _version, ok in served if lo <= row < hi]
    return sum(window) / len(window) if window else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _summary(store: Any, result: LoopResult) -> dict[str, str]:
    """The closing table, from the traffic the demo sent and what the store recorded."""
    from stead.entities import Ref

    served, detected_at, promoted_at = result.served, result.detected_at, result.promoted_at
    rollouts = store.list_rollouts("churn-api", limit=10)
    champion = store.resolve_version(Ref.parse("churn@champion"))
    recovered = promoted_at if promoted_at is not None else TOTAL
    last = max((row for row, _version, _ok in served), default=TOTAL) + 1
    return {
        "customers served": f"{len(served):,}",
        "drift at customer": f"{DRIFT_AT:,}",
        "detection delay": "not detected" if detected_at is None else f"{detected_at - DRIFT_AT} customers",
        "retrained version at 100% after": "-" if promoted_at is None else f"{promoted_at - DRIFT_AT} customers",
        "versions": ", ".join(f"v{v.version} {v.state}" for v in store.list_model_versions("churn")),
        "champion": f"v{champion.version}",
        "rollouts": ", ".join(f"v{r['candidate']} {r['status']}" for r in reversed(rollouts)) or "none",
        "accuracy before drift": _fmt(_accuracy(served, INITIAL, DRIFT_AT)),
        "accuracy after drift": _fmt(_accuracy(served, DRIFT_AT, recovered)),
        "accuracy after recovery": _fmt(_accuracy(served, recovered, last)),
        "false alarms before the drift": str(result.false_alarms),
        "requests failed": str(result.failed),
        "human steps": "0",
        "time": f"{time.monotonic() - result.started:.0f} s",
    }
