"""The closed-loop benchmark: stead's loop against a never-retrained model and an oracle, on abrupt and
gradual drift, in one run.

    .venv/bin/python benchmarks/closed_loop.py [--total 20000] [--scenarios abrupt,gradual] [--rate 200]

For each scenario the whole loop runs as in ``stead demo`` (real HTTP server, late labels, the controller
with monitors, triggers, gates and canary analysis) over the whole stream, and the script reports what
follows, in customers. The stream is paced (``--rate`` customers per second, 200 by default): the loop's
steps take wall-clock time (a monitor tick, a training subprocess), and a stream sent as fast as the server
answers (``--rate 0``, what ``stead demo`` does to finish in a minute) would price each second of them at
about a thousand customers, which measures the machine rather than the loop.

- detection delay: customers from the drift's start to the first dataset-drift alert;
- false alarms: dataset-drift alerts before the drift;
- customers until the retrained version serves 100%;
- prequential accuracy (each customer predicted before its label is known) of stead's loop, of the first
  version never retrained, and of an oracle retrained exactly at the drift on the post-drift customers it
  could not have seen yet (the upper bound), over the same customers;
- the share of the way stead's loop goes from the never-retrained model to the oracle (goal: >= 90%).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from stead.demo import DRIFT_AT, FEATURES, FEED, INITIAL, STEAD_YAML, TRAIN_PY, LoopConfig, run_loop


def _train(frame):  # type: ignore[no-untyped-def]
    """The demo's own train(ctx) on a frame, for the baselines."""
    spec = importlib.util.spec_from_loader("demo_train", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(TRAIN_PY, module.__dict__)  # the same code the loop trains with

    class Ctx:
        X = frame[FEATURES]
        y = frame["churned"]
        params: dict[str, object] = {}
        seed = 42

    return module.train(Ctx)


def policy_yaml(min_requests: int | None, cooldown: str | None, base: str = STEAD_YAML) -> str:
    """The demo's stead.yaml (or ``base``), with another canary sample size or retrain cooldown when given."""
    if min_requests is not None:
        base = re.sub(r"min_requests: \d+", f"min_requests: {min_requests}", base)
    if cooldown is not None:
        base = re.sub(r"cooldown: \w+", f"cooldown: {cooldown}", base)
    return base


def scenario(
    name: str, total: int, rate: float | None, project_yaml: str, say: Any = None
) -> dict[str, float | int | None]:
    width = 0 if name == "abrupt" else 3_000
    folder = Path(tempfile.mkdtemp(prefix=f"stead-loop-{name}-"))
    start = time.monotonic()
    result = run_loop(
        folder,
        LoopConfig(
            total=total, drift_at=DRIFT_AT, width=width, after_recovery=None, rate=rate, project_yaml=project_yaml
        ),
        say=say,
    )
    elapsed = time.monotonic() - start
    stream = result.stream
    rows = np.array([row for row, _v, _ok in result.served])
    stead_correct = np.array([ok for _row, _v, ok in result.served])
    truth = stream["churned"].to_numpy()
    first = _train(stream.iloc[:INITIAL])
    never = first.predict(stream[FEATURES].iloc[rows]) == truth[rows]
    # The oracle switches at the drift to a model trained on the first FEED customers after it (for gradual
    # drift: the first FEED customers once the new world is complete).
    switch = DRIFT_AT + width
    oracle_model = _train(stream.iloc[switch : switch + FEED])
    oracle_pred = np.where(
        rows >= DRIFT_AT,
        oracle_model.predict(stream[FEATURES].iloc[rows]),
        first.predict(stream[FEATURES].iloc[rows]),
    )
    oracle = oracle_pred == truth[rows]
    acc = {"stead": float(stead_correct.mean()), "never": float(never.mean()), "oracle": float(oracle.mean())}
    gap = acc["oracle"] - acc["never"]
    return {
        "customers": len(rows),
        "detection_delay": None if result.detected_at is None else result.detected_at - DRIFT_AT,
        "false_alarms": result.false_alarms,
        "to_100pct": None if result.promoted_at is None else result.promoted_at - DRIFT_AT,
        "failed_requests": result.failed,
        "acc_stead": acc["stead"],
        "acc_never": acc["never"],
        "acc_oracle": acc["oracle"],
        "way_to_oracle": (acc["stead"] - acc["never"]) / gap if gap > 0 else None,
        "seconds": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total", type=int, default=20_000, help="customers in each stream")
    parser.add_argument("--scenarios", default="abrupt,gradual")
    parser.add_argument(
        "--rate",
        type=float,
        default=200.0,
        help="customers per second (0: as fast as the server answers, as stead demo does)",
    )
    parser.add_argument("--min-requests", type=int, help="the canary analysis' sample size (default: the demo's)")
    parser.add_argument("--cooldown", help="the retrain cooldown (default: the demo's)")
    parser.add_argument("--project", type=Path, help="a stead.yaml to run instead of the demo's")
    parser.add_argument("--timeline", action="store_true", help="print the loop's timeline as it runs")
    args = parser.parse_args()
    say = (lambda line: print(re.sub(r"\[/?bold\]", "", line), flush=True)) if args.timeline else None
    rate = args.rate or None
    base = args.project.read_text() if args.project else STEAD_YAML
    project_yaml = policy_yaml(args.min_requests, args.cooldown, base)
    policy = [
        line.split("#")[0].strip()
        for line in project_yaml.splitlines()
        if re.match(r"\s+(rollout|analysis|cooldown|after)", line)
    ]
    print("policy: " + "; ".join(policy))
    print(f"stream: {args.total:,} customers at {'full speed' if rate is None else f'{rate:g} customers/s'}")
    results = {name: scenario(name, args.total, rate, project_yaml, say) for name in args.scenarios.split(",")}
    print()
    print(
        f"{'scenario':10} {'delay':>7} {'false':>6} {'to 100%':>8} {'failed':>7} {'stead':>7} {'never':>7} "
        f"{'oracle':>7} {'way':>6} {'time':>6}"
    )
    for name, r in results.items():
        way = "-" if r["way_to_oracle"] is None else f"{r['way_to_oracle']:.0%}"
        print(
            f"{name:10} {r['detection_delay'] if r['detection_delay'] is not None else '-':>7} {r['false_alarms']:>6} "
            f"{r['to_100pct'] if r['to_100pct'] is not None else '-':>8} {r['failed_requests']:>7} "
            f"{r['acc_stead']:7.3f} {r['acc_never']:7.3f} {r['acc_oracle']:7.3f} {way:>6} {r['seconds']:5.0f}s"
        )
    print("(delay and 'to 100%' in customers after the drift's start; accuracies prequential over the same customers)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
