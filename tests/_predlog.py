"""Prediction-log segments written straight into a store (the serving log's Parquet shape), with feedback:
for tests of what reads the log (monitors, the controller) without running a server."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def log_segment(
    client: Any,
    deployment: str,
    inputs: pd.DataFrame,
    predictions: Sequence[Any],
    labels: Sequence[Any] | None,
    *,
    start: float,
    sequence: int,
    labelled: float = 1.0,
    spacing: float = 10.0,
    model: str = "churn",
    version: int = 1,
) -> list[str]:
    """One segment of one-row requests ``spacing`` seconds apart from ``start``, and feedback with ``labels``
    for a random ``labelled`` share of them (seeded by ``sequence``); returns the request ids."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(inputs)
    ids = [f"{sequence:04d}-{i:06d}" for i in range(n)]
    times = start + np.arange(n) * spacing
    table = {
        "request_id": ids,
        "row": [0] * n,
        "time": times,
        "model": [model] * n,
        "version": [version] * n,
        "route": ["primary"] * n,
        "latency_ms": [1.5] * n,
        **{f"inputs.{c}": inputs[c].to_numpy() for c in inputs.columns},
        "outputs.predictions": np.asarray(predictions),
    }
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(table), sink)
    digest = client.store.artifacts.put_bytes(sink.getvalue().to_pybytes())
    client.store.add_prediction_segment(deployment, digest, n, float(times[0]), float(times[-1]), "test", sequence)
    if labels is not None:
        chosen = np.random.default_rng(sequence).random(n) < labelled
        client.store.record_feedback(
            deployment, {rid: int(y) for rid, y, keep in zip(ids, labels, chosen, strict=True) if keep}
        )
    return ids
