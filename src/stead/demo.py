"""``stead demo``: the loop on generated data, start to finish, on the embedded default (layer: demo).

Today it runs every part that exists, for real, on a fresh store: a classification stream whose
covariates shift at a known point, tracked training runs with their dataset versions, search, lineage
and a drift report between the training data and the shifted traffic. The parts that later work
brings (serving, canary analysis, the controller's retraining) are named at the end, not faked.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from stead.errors import MissingDependency

__all__ = ["make_stream", "run_demo"]

FEATURES = ["tenure", "monthly_charges", "support_calls", "usage_gb", "contract"]


def make_stream(n: int, drift_at: int, seed: int = 0) -> Any:
    """A churn-like stream: numeric and categorical features, a label, and a covariate shift at ``drift_at``.

    After the drift point customers call support more, use more data and move to monthly contracts, and
    the churn rule changes with them (concept drift), so a model trained before the drift degrades.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    after = np.arange(n) >= drift_at
    tenure = rng.gamma(2.0, 12.0, n)
    charges = rng.normal(70, 20, n)
    calls = rng.poisson(np.where(after, 3.5, 1.5))
    usage = rng.lognormal(np.where(after, 3.3, 3.0), 0.5, n)
    contract = np.where(rng.random(n) < np.where(after, 0.75, 0.45), "monthly", rng.choice(["one_year", "two_year"], n))
    logit = -1.0 - 0.05 * tenure + 0.02 * (charges - 70) + 0.6 * calls + 0.8 * (contract == "monthly")
    logit = logit + np.where(after, 0.04 * (usage - 25), 0.0) - np.where(after, 1.0, 0.0)
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "tenure": tenure,
            "monthly_charges": charges,
            "support_calls": calls,
            "usage_gb": usage,
            "contract": contract,
            "churned": churned,
        }
    )


def _pipeline(c: float) -> Any:
    try:
        from sklearn.compose import ColumnTransformer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler
    except ModuleNotFoundError as exc:
        raise MissingDependency(
            "stead demo trains scikit-learn models, which are not installed", hint="pip install 'stead[sklearn]'"
        ) from exc
    prep = ColumnTransformer(
        [("num", StandardScaler(), FEATURES[:4]), ("cat", OneHotEncoder(handle_unknown="ignore"), ["contract"])]
    )
    return Pipeline([("prep", prep), ("model", LogisticRegression(C=c, max_iter=500))])


def run_demo(folder: Path, echo: Any = None) -> int:
    """Run the demo in ``folder`` (created; an existing demo store there is reused) and return 0."""
    from rich.console import Console

    from stead.client import Client
    from stead.monitoring import drift
    from stead.settings import Settings
    from stead.tracking import start_run

    console = Console()
    say = echo or console.print
    started = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env(uri=str(folder / ".stead"))
    client = Client(settings=settings)
    say(f"[bold]stead demo[/] in {folder.resolve()} (store {settings.uri})")

    stream = make_stream(12_000, drift_at=6_000, seed=42)
    train, holdout, live = stream.iloc[:4_000], stream.iloc[4_000:6_000], stream.iloc[6_000:]
    say("1. generated a churn stream of 12,000 customers; its inputs and churn rule shift at customer 6,000")

    from sklearn.metrics import accuracy_score, roc_auc_score

    best: tuple[float, str, Any] | None = None
    for c in (0.01, 0.1, 1.0):
        with start_run(experiment="churn", params={"C": c, "model": "logistic"}, seed=7, settings=settings) as run:
            run.log_dataset("churn", train, role="train")
            run.log_dataset("churn-holdout", holdout, role="holdout")
            model = _pipeline(c).fit(train[FEATURES], train["churned"])
            proba = model.predict_proba(holdout[FEATURES])[:, 1]
            auc = float(roc_auc_score(holdout["churned"], proba))
            run.log_metrics({"roc_auc": auc, "accuracy": float(accuracy_score(holdout["churned"], proba > 0.5))})
            if best is None or auc > best[0]:
                best = (auc, run.id, model)
    assert best is not None
    say("2. trained 3 tracked runs (C = 0.01, 0.1, 1); each recorded its params, seed, environment and data")

    top = client.search_runs("churn", filter="metrics.roc_auc > 0.5", order_by="metrics.roc_auc DESC")[0]
    say(f"3. search_runs found the best run {top.id[:12]}: roc_auc {top.metrics['roc_auc']:.3f}, C={top.params['C']}")
    graph = client.lineage(f"run:{top.id}")
    inputs = [n["label"] for n in graph.nodes if n["kind"] == "dataset"]
    say(f"4. its lineage: {', '.join(inputs)} -> run {top.id[:12]}")

    model = best[2]
    before = float(accuracy_score(holdout["churned"], model.predict(holdout[FEATURES])))
    after = float(accuracy_score(live["churned"], model.predict(live[FEATURES])))
    report = drift(train[FEATURES], live[FEATURES].iloc[:1000])
    drifted = [name for name, col in report.columns.items() if col.drifted]
    steady = drift(train[FEATURES], holdout[FEATURES].iloc[:1000])
    say(
        f"5. drift report on 1,000 live customers after the shift: {len(drifted)} of {len(report.columns)} features "
        f"drifted ({', '.join(drifted) or 'none'}); on pre-shift traffic: {len(steady.drifted_columns)} drifted"
    )
    say(f"   accuracy of the best model: {before:.3f} before the shift, {after:.3f} after it")

    elapsed = time.monotonic() - started
    say("")
    say("[bold]summary[/]")
    say(f"runs tracked: {len(client.search_runs('churn'))}")
    say(f"dataset versions: {len(client.list_datasets())}")
    say(f"drift detected: {'yes' if report.drifted else 'no'} ({report.share:.0%} of features)")
    say(f"accuracy before drift: {before:.3f}")
    say(f"accuracy after drift: {after:.3f}")
    say("requests failed: 0 (no requests yet: serving is still to come)")
    say("human steps: 0")
    say(f"time: {elapsed:.1f} s")
    say("")
    say(
        "still to come in the loop: the registry and serving (deploy, canary, rollback), monitors and alerts on "
        "live traffic, and the controller that retrains on drift and promotes through gates."
    )
    say(f"explore: cd {folder} && stead runs list")
    return 0
