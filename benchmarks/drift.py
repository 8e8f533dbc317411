"""Drift at scale: stead's drift report against Evidently 0.7, NannyML and a numpy/scipy floor, in one run.

    .venv/bin/python benchmarks/drift.py [--sizes 10000 100000 1000000] [--skip evidently nannyml]

Data: 20 numeric and 5 categorical columns, the same number of rows on each side. Three columns truly drift
(``num_00``: a 0.3-sigma mean shift, ``num_01``: a 1.5x wider spread, ``cat_00``: one category three times as
frequent); the other 22 do not. For each size it prints the seconds of each tool, the ratios to stead, and
whether each tool flagged exactly the drifting columns (at its default settings).

Evidently (its ``DataDriftPreset``) and NannyML (``UnivariateDriftCalculator`` with KS and chi-squared, 10 chunks a
side, a column flagged when most analysis chunks alert: NannyML's thresholds come from the reference chunks) run
in their own virtualenvs under ``benchmarks/.venvs/`` (created on first use; an install that fails is reported and
skipped) as subprocesses that read the same Parquet files and time only the computation. The floor is ``ks_2samp`` plus
a numpy PSI per numeric column and a numpy PSI per categorical column. stead's figure is the whole
``stead.monitoring.drift(reference, current)`` report with its defaults, and its peak traced memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
DRIFTING = {"num_00", "num_01", "cat_00"}
N_NUM, N_CAT = 20, 5
CATEGORIES = [f"c{i}" for i in range(6)]
P_REF = np.array([0.10, 0.30, 0.20, 0.15, 0.15, 0.10])
P_CUR = np.array([0.30, 0.22, 0.15, 0.11, 0.13, 0.09])  # c0 three times as frequent, the rest scaled down

PEERS: dict[str, dict[str, Any]] = {
    # both import names pandas 3 removed; nannyml imports statsmodels without declaring it
    "evidently": {"packages": ["evidently>=0.7,<0.8", "pandas<3", "pyarrow"], "module": "evidently"},
    "nannyml": {"packages": ["nannyml", "statsmodels", "pandas<3", "pyarrow"], "module": "nannyml"},
}

EVIDENTLY_WORKER = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from evidently import Report, Dataset, DataDefinition
from evidently.presets import DataDriftPreset
import evidently
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2])
num = [c for c in ref.columns if c.startswith("num_")]; cat = [c for c in ref.columns if c.startswith("cat_")]
t0 = time.perf_counter()
definition = DataDefinition(numerical_columns=num, categorical_columns=cat)
r = Dataset.from_pandas(ref, data_definition=definition); c = Dataset.from_pandas(cur, data_definition=definition)
result = Report([DataDriftPreset()]).run(c, r)
seconds = time.perf_counter() - t0
flagged = []
for m in result.dict()["metrics"]:
    name = m.get("metric_id") or m.get("metric_name") or ""
    cfg = m.get("config") or {}
    col = cfg.get("column") or (cfg.get("params") or {}).get("column")
    if col and "ValueDrift" in str(name):
        value = m["value"]; threshold = cfg.get("threshold")
        method = str(cfg.get("method") or "")
        pvalue = "p_value" in method or "p-value" in method.lower() or method in ("ks", "chisquare", "z")
        if threshold is None:
            drifted = False
        else:
            drifted = value < threshold if pvalue else value >= threshold
        if drifted:
            flagged.append(col)
print(json.dumps({"seconds": seconds, "flagged": sorted(set(flagged)), "version": evidently.__version__}))
"""

NANNYML_WORKER = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
import nannyml as nml
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2])
cat = [c for c in ref.columns if c.startswith("cat_")]
for c in cat:
    ref[c] = ref[c].astype("category"); cur[c] = cur[c].astype("category")
t0 = time.perf_counter()
# NannyML's thresholds come from the spread of the statistic over the reference's chunks, so it needs several:
# 10 chunks a side; a column counts as flagged when most of the analysis chunks alert.
calc = nml.UnivariateDriftCalculator(column_names=list(ref.columns), chunk_number=10,
                                     continuous_methods=["kolmogorov_smirnov"], categorical_methods=["chi2"])
calc.fit(ref)
res = calc.calculate(cur).filter(period="analysis").to_df()
seconds = time.perf_counter() - t0
flagged = []
for col in ref.columns:
    method = "kolmogorov_smirnov" if col.startswith("num_") else "chi2"
    if res[(col, method, "alert")].astype(bool).mean() > 0.5:
        flagged.append(col)
print(json.dumps({"seconds": seconds, "flagged": sorted(flagged), "version": nml.__version__}))
"""

WORKERS = {"evidently": EVIDENTLY_WORKER, "nannyml": NANNYML_WORKER}


def make_frames(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    for i in range(N_NUM):
        name = f"num_{i:02d}"
        loc, scale = rng.uniform(-5, 5), rng.uniform(0.5, 3)
        ref[name] = rng.normal(loc, scale, n)
        shift = 0.3 * scale if name == "num_00" else 0.0
        spread = 1.5 if name == "num_01" else 1.0
        cur[name] = rng.normal(loc + shift, scale * spread, n)
    for i in range(N_CAT):
        name = f"cat_{i:02d}"
        ref[name] = np.asarray(CATEGORIES, dtype=object)[rng.choice(6, n, p=P_REF)]
        cur[name] = np.asarray(CATEGORIES, dtype=object)[rng.choice(6, n, p=P_CUR if name == "cat_00" else P_REF)]
    return pd.DataFrame(ref), pd.DataFrame(cur)


def _psi(p_ref: np.ndarray, p_cur: np.ndarray, eps: float = 1e-4) -> float:
    p_ref = np.where(p_ref == 0, eps, p_ref)
    p_cur = np.where(p_cur == 0, eps, p_cur)
    return float(np.sum((p_cur - p_ref) * np.log(p_cur / p_ref)))


def floor(ref: pd.DataFrame, cur: pd.DataFrame) -> tuple[float, list[str]]:
    """ks_2samp + numpy PSI per numeric column, numpy PSI per categorical column (flag: KS p < 0.05 / PSI > 0.1)."""
    from scipy.stats import ks_2samp

    t0 = time.perf_counter()
    flagged = []
    for col in ref.columns:
        a, b = ref[col].to_numpy(), cur[col].to_numpy()
        if col.startswith("num_"):
            p = ks_2samp(a, b).pvalue
            edges = np.quantile(a, np.linspace(0, 1, 11))
            edges[0], edges[-1] = -np.inf, np.inf
            psi = _psi(np.histogram(a, edges)[0] / len(a), np.histogram(b, edges)[0] / len(b))
            if p < 0.05:
                flagged.append(col)
            del psi
        else:
            cats = np.unique(np.concatenate([a, b]))
            ra = pd.Series(a).value_counts().reindex(cats, fill_value=0).to_numpy() / len(a)
            rb = pd.Series(b).value_counts().reindex(cats, fill_value=0).to_numpy() / len(b)
            if _psi(ra, rb) > 0.1:
                flagged.append(col)
    return time.perf_counter() - t0, flagged


def run_stead(ref: pd.DataFrame, cur: pd.DataFrame) -> tuple[float, list[str], float]:
    from stead.monitoring import drift

    drift(ref.head(1000), cur.head(1000))  # warm the imports
    t0 = time.perf_counter()
    report = drift(ref, cur)
    seconds = time.perf_counter() - t0
    tracemalloc.start()  # a second, untimed call: tracing every allocation slows it down several times
    drift(ref, cur)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, report.drifted_columns, peak / 2**20


def peer_python(name: str) -> Path | None:
    """The peer's virtualenv python, created with its packages on first use; None (and why) if that fails."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    module = PEERS[name]["module"]
    if python.exists() and subprocess.run([str(python), "-c", f"import {module}"], capture_output=True).returncode == 0:
        return python
    print(f"[{name}] creating {venv} and installing {' '.join(PEERS[name]['packages'])} …", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *PEERS[name]["packages"]], capture_output=True, text=True
        )
        if done.returncode != 0:
            print(f"[{name}] install failed, skipping it:\n{done.stderr.strip()[-2000:]}")
            return None
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"[{name}] could not create its virtualenv, skipping it: {exc}")
        return None
    return python


def run_peer(name: str, python: Path, ref_path: Path, cur_path: Path) -> dict[str, Any] | None:
    done = subprocess.run(
        [str(python), "-c", WORKERS[name], str(ref_path), str(cur_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if done.returncode != 0:
        print(f"[{name}] failed:\n{done.stderr.strip()[-2000:]}")
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def verdict(flagged: list[str]) -> str:
    hit = DRIFTING & set(flagged)
    false = set(flagged) - DRIFTING
    ok = "OK" if hit == DRIFTING and not false else "WRONG"
    return f"{ok}: {len(hit)}/3 drifting flagged, {len(false)}/22 steady flagged" + (
        f" ({', '.join(sorted(false))})" if false else ""
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--skip", nargs="*", default=[], choices=sorted(PEERS))
    args = parser.parse_args()
    pythons = {name: peer_python(name) for name in PEERS if name not in args.skip}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            ref, cur = make_frames(n)
            frames_mb = (ref.memory_usage(deep=True).sum() + cur.memory_usage(deep=True).sum()) / 2**20
            ref_path, cur_path = Path(tmp) / f"ref_{n}.parquet", Path(tmp) / f"cur_{n}.parquet"
            ref.to_parquet(ref_path)
            cur.to_parquet(cur_path)
            s_sec, s_flag, s_peak = run_stead(ref, cur)
            f_sec, f_flag = floor(ref, cur)
            row: dict[str, Any] = {
                "rows": n,
                "frames_mb": frames_mb,
                "stead": (s_sec, s_flag),
                "stead_peak_mb": s_peak,
                "floor": (f_sec, f_flag),
            }
            print(f"\n== {n:,} rows per side (frames {frames_mb:.0f} MiB) ==")
            print(f"stead     {s_sec:8.3f} s  peak traced {s_peak:.0f} MiB  {verdict(s_flag)}")
            print(f"floor     {f_sec:8.3f} s  stead/floor {s_sec / f_sec:.2f}x  {verdict(f_flag)}")
            for name, python in pythons.items():
                if python is None:
                    continue
                result = run_peer(name, python, ref_path, cur_path)
                if result is None:
                    continue
                row[name] = (result["seconds"], result["flagged"], result["version"])
                print(
                    f"{name:9} {result['seconds']:8.3f} s  {name}/stead {result['seconds'] / s_sec:.1f}x  "
                    f"(v{result['version']})  {verdict(result['flagged'])}"
                )
            rows.append(row)
            del ref, cur
    print("\nsummary (seconds; x = that tool's time / stead's)")
    for row in rows:
        parts = [f"{row['rows']:>9,}", f"stead {row['stead'][0]:.3f}", f"floor {row['floor'][0]:.3f}"]
        for name in PEERS:
            if name in row:
                parts.append(f"{name} {row[name][0]:.2f} ({row[name][0] / row['stead'][0]:.1f}x)")
        print("  ".join(parts))


if __name__ == "__main__":
    main()
