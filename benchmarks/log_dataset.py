"""Time stead.datasets.content_hash and profile on a 1,000,000 x 25 frame (best of 3).

The frame: 20 float64 columns (normal, 1% NaN in one), 3 string columns and 2 categorical columns with 10
values each. Run: ``.venv/bin/python benchmarks/log_dataset.py [rows]``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from stead.datasets import content_hash, profile


def build(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    data: dict[str, Any] = {f"f{i}": rng.normal(i, 1 + i, rows) for i in range(20)}
    data["f0"][rng.random(rows) < 0.01] = np.nan
    words = np.array([f"value-{i}" for i in range(10)], dtype=object)
    for i in range(3):
        data[f"s{i}"] = pd.Series(words[rng.integers(0, 10, rows)], dtype="str")
    for i in range(2):
        data[f"c{i}"] = pd.Categorical(words[rng.integers(0, 10, rows)])
    return pd.DataFrame(data)


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    df = build(rows)
    print(f"frame: {rows:,} rows x {df.shape[1]} columns, {df.memory_usage(deep=True).sum() / 1e6:.0f} MB")
    print(f"content_hash: {best_of(lambda: content_hash(df)):.3f} s")
    print(f"profile:      {best_of(lambda: profile(df)):.3f} s")
    print(f"both:         {best_of(lambda: (content_hash(df), profile(df))):.3f} s")
    print(f"id: {content_hash(df)}")


if __name__ == "__main__":
    main()
