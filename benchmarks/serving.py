"""Serving benchmark: stead (prediction logging on) against ``mlflow models serve`` and two floors, in one run.

    .venv/bin/python benchmarks/serving.py [--duration 5] [--workers 1 2] [--concurrency 1 32]

The model: a 20-feature gradient-boosting classifier (scikit-learn, 100 trees, ``random_state=0``), trained
the same way in stead's virtualenv and in MLflow's (``benchmarks/.venvs/mlflow``, ``--env-manager local``).
Each server runs as its own process with the same worker count and answers one-row requests on loopback:

- ``constant``: a bare Starlette endpoint returning a constant (the HTTP limit);
- ``predict``: a bare Starlette endpoint that parses the rows and calls ``model.predict`` in the event loop;
- ``mlflow``: ``mlflow models serve -w N --env-manager local``;
- ``stead``: ``python -m stead.serving.app --workers N`` with its durable prediction log on, without and with
  adaptive batching (``STEAD_BATCHING=auto``: up to 64 rows, 2 ms). Without batching, the same server then
  takes the top concurrency on a deployment with a 10% canary route (version 2, the same model) and 100-row
  requests on a deployment of their own, whose log rows are counted against the rows answered.

The floors run under uvicorn with httptools and uvloop when installed, on a listening socket with
``TCP_NODELAY`` (``stead.serving.app.listening_socket``). Load comes from ``wrk`` (Debian's package; a
``done`` hook prints requests/s, p50 and p99) in its own process, one thread, keep-alive connections; without
``wrk`` a small asyncio load generator on httpx is used (it costs more CPU per request: compare within a run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MLFLOW_VENV = HERE / ".venvs" / "mlflow"
FEATURES = [f"f{i}" for i in range(20)]
ROW = {name: round(0.1 * i - 0.9, 2) for i, name in enumerate(FEATURES)}

TRAIN = r"""
import numpy as np, pandas as pd
from sklearn.ensemble import GradientBoostingClassifier
rng = np.random.default_rng(0)
X = pd.DataFrame(rng.normal(size=(5000, 20)), columns=[f"f{i}" for i in range(20)])
y = ((X["f0"] + X["f1"] * X["f2"] - X["f3"]) > 0).astype(int)
model = GradientBoostingClassifier(n_estimators=100, random_state=0).fit(X, y)
"""

MLFLOW_SAVE = (
    TRAIN
    + r"""
import sys, mlflow.sklearn
from mlflow.models import infer_signature
mlflow.sklearn.save_model(
    model, sys.argv[1], signature=infer_signature(X.head(5), model.predict(X.head(5))),
    skops_trusted_types=["sklearn.tree._tree.Tree"],  # trained just now, by this script
)
"""
)

# ---------------------------------------------------------------- the floors (run in their own processes)


def floor_app() -> Any:
    """The floor named by ``BENCH_FLOOR`` (``constant`` or ``predict``), as an ASGI app (a uvicorn factory)."""
    import pandas as pd
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    kind = os.environ["BENCH_FLOOR"]
    if kind == "constant":

        async def constant(request: Request) -> Response:
            await request.body()
            return JSONResponse({"predictions": [1]})

        return Starlette(routes=[Route("/predict", constant, methods=["POST"])])
    import pickle

    with open(os.environ["BENCH_MODEL"], "rb") as fh:
        model = pickle.load(fh)

    async def predict(request: Request) -> Response:
        body = json.loads(await request.body())
        return JSONResponse({"predictions": model.predict(pd.DataFrame(body["instances"])).tolist()})

    return Starlette(routes=[Route("/predict", predict, methods=["POST"])])


def serve_floor(port: int, workers: int) -> None:
    import uvicorn

    from stead.serving.app import listening_socket

    sys.path.insert(0, str(HERE))
    config = uvicorn.Config("serving:floor_app", factory=True, port=port, workers=workers, log_level="warning")
    sock = listening_socket("127.0.0.1", port)
    if workers == 1:
        uvicorn.Server(config).run(sockets=[sock])
    else:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[sock]).run()


# ---------------------------------------------------------------- load


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = %s
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %%d %%f %%f %%f %%d %%d\\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1e6, latency:percentile(99) / 1e6, summary.errors.status, errors))
end
"""


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def load_wrk(url: str, body: str, concurrency: int, duration: float, folder: Path) -> dict[str, float]:
    script = folder / "post.lua"
    script.write_text(WRK_SCRIPT % _lua_string(body))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{duration:g}s", "--timeout", "10s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    n, seconds, p50, p99, bad, errors = line.split()[1:]
    return {
        "rps": int(n) / float(seconds),
        "p50_ms": float(p50) * 1000,
        "p99_ms": float(p99) * 1000,
        "failed": int(bad) + int(errors),
        "requests": int(n),
    }


LOADGEN = r"""
import asyncio, json, sys, time
import httpx
url, body, conc, dur = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), float(sys.argv[4])
async def main():
    lat, bad = [], 0
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(limits=limits, timeout=10) as c:
        end = time.perf_counter() + dur
        async def worker():
            nonlocal bad
            while time.perf_counter() < end:
                t = time.perf_counter()
                r = await c.post(url, content=body, headers={"content-type": "application/json"})
                lat.append(time.perf_counter() - t)
                bad += r.status_code != 200
        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(conc)])
        el = time.perf_counter() - t0
    lat.sort()
    print(json.dumps({"rps": len(lat) / el, "p50_ms": lat[len(lat) // 2] * 1000,
                      "p99_ms": lat[int(len(lat) * 0.99)] * 1000, "failed": bad, "requests": len(lat)}))
asyncio.run(main())
"""


def load_python(url: str, body: str, concurrency: int, duration: float, folder: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", LOADGEN, url, body, str(concurrency), str(duration)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


# ---------------------------------------------------------------- servers


class Proc:
    def __init__(self, argv: list[str], env: dict[str, str], ready: str, log: Path) -> None:
        self.log = open(log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=self.log, start_new_session=True)
        import httpx

        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(ready, timeout=1).status_code in (200, 405):
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{argv[:3]} did not start; see {log}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--serve-floor", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mlflow-python", default=str(MLFLOW_VENV / "bin" / "python"))
    args = parser.parse_args(argv)
    if args.serve_floor:
        os.environ["BENCH_FLOOR"] = args.serve_floor
        serve_floor(args.port, args.workers[0])
        return 0

    import pickle

    import pandas as pd

    folder = Path(tempfile.mkdtemp(prefix="stead-bench-serving-"))
    load = load_wrk if shutil.which("wrk") else load_python
    print(f"load generator: {'wrk' if load is load_wrk else 'python asyncio + httpx'}; results in {folder}")
    scope: dict[str, Any] = {}
    exec(TRAIN, scope)
    model, X = scope["model"], scope["X"]
    (folder / "model.pkl").write_bytes(pickle.dumps(model))
    one, many = pd.DataFrame([ROW]), X.head(1000)
    # scikit-learn checks a DataFrame's names and dtypes on every call; on a bare array it does not, which is
    # the cheapest in-process predict there is: the latency goal is judged against the smaller of the two.
    block = one[list(model.feature_names_in_)].to_numpy()
    model.predict(one)
    timings = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "X does not have valid feature names", for the array
        for data, reps in ((one, 300), (many, 20), (block, 300)):
            t0 = time.perf_counter()
            for _ in range(reps):
                model.predict(data)
            timings.append((time.perf_counter() - t0) / reps * 1000)
    inproc_df, inproc_1000, inproc_np = timings
    inproc_1 = min(inproc_df, inproc_np)
    print(
        f"in-process predict: 1 row {inproc_df:.3f} ms as a DataFrame, {inproc_np:.3f} ms as an array; "
        f"1,000 rows {inproc_1000:.2f} ms"
    )

    from stead.client import Client
    from stead.settings import Settings

    store = folder / "store"
    client = Client(settings=Settings(uri=str(store), user="bench"))
    client.register_model("gbm", model, input_example=X.head(5))
    client.register_model("gbm", model, input_example=X.head(5))  # version 2, the canary
    client.deploy("gbm/1", "gbm-api")
    client.deploy("gbm/1", "gbm-canary")
    client.deploy("gbm/2", "gbm-canary", canary=10)
    client.deploy("gbm/1", "gbm-rows")
    mlflow_model = folder / "mlflow-model"
    subprocess.run([args.mlflow_python, "-c", MLFLOW_SAVE, str(mlflow_model)], check=True, capture_output=True)

    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("STEAD_", "BENCH_", "MLFLOW_"))}
    v1_body = json.dumps({"instances": [ROW]})
    mlflow_body = json.dumps({"dataframe_records": [ROW]})
    rows100_body = json.dumps({"instances": X.head(100).round(4).to_dict(orient="records")})
    results: list[dict[str, Any]] = []

    def run(
        name: str,
        workers: int,
        argv: list[str],
        env: dict[str, str],
        url: str,
        body: str,
        ready: str,
        extra: tuple[tuple[str, str, str, int], ...] = (),
    ) -> None:
        """Serve, then load ``url`` at each concurrency, then each ``extra`` target (name, url, body, c)."""
        server = Proc(argv, {**base_env, **env}, ready, folder / f"{name}-{workers}.log")
        targets = [(name, url, body, conc) for conc in args.concurrency] + list(extra)
        try:
            for label, target, payload, conc in targets:
                warm = load(target, payload, conc, 1.0, folder)
                r = load(target, payload, conc, args.duration, folder)
                r.update(server=label, workers=workers, concurrency=conc, warmup=warm.get("requests", 0))
                results.append(r)
                print(
                    f"  {label:<22} w={workers} c={conc:<3} {r['rps']:>8.0f} req/s  p50 {r['p50_ms']:7.2f} ms"
                    f"  p99 {r['p99_ms']:8.2f} ms  failed {int(r['failed'])}",
                    flush=True,
                )
        finally:
            server.stop()

    for workers in args.workers:
        for floor in ("constant", "predict"):
            port = _free_port()
            argv = [sys.executable, str(HERE / "serving.py"), "--serve-floor", floor, "--port", str(port)]
            argv += ["--workers", str(workers)]
            env = {"BENCH_MODEL": str(folder / "model.pkl"), "PYTHONPATH": str(ROOT / "src")}
            url = f"http://127.0.0.1:{port}/predict"
            run(f"floor-{floor}", workers, argv, env, url, v1_body, url)
        port = _free_port()
        mlflow_bin = str(Path(args.mlflow_python).parent / "mlflow")
        argv = [mlflow_bin, "models", "serve", "-m", str(mlflow_model), "--env-manager", "local"]
        argv += ["-p", str(port), "-w", str(workers), "-h", "127.0.0.1"]
        run(
            "mlflow",
            workers,
            argv,
            {"PATH": f"{Path(args.mlflow_python).parent}{os.pathsep}{os.environ.get('PATH', '')}"},  # its uvicorn
            f"http://127.0.0.1:{port}/invocations",
            mlflow_body,
            f"http://127.0.0.1:{port}/ping",
        )
        for batching in ("off", "auto"):
            port = _free_port()
            argv = [sys.executable, "-m", "stead.serving.app", "--port", str(port), "--workers", str(workers)]
            env = {"STEAD_URI": str(store), "STEAD_USER": "bench", "STEAD_BATCHING": batching}
            api = f"http://127.0.0.1:{port}/v1/deployments"
            top = max(args.concurrency)
            extra: tuple[tuple[str, str, str, int], ...] = ()
            if batching == "off":
                # The same load on a deployment with a 10% canary, then 100-row requests on a deployment of
                # its own, whose log rows are counted against the answered rows afterwards.
                extra = (
                    (f"stead-canary10-{batching}", f"{api}/gbm-canary/predict", v1_body, top),
                    (f"stead-rows100-{batching}", f"{api}/gbm-rows/predict", rows100_body, top),
                )
            run(
                f"stead-batch-{batching}",
                workers,
                argv,
                env,
                f"{api}/gbm-api/predict",
                v1_body,
                f"http://127.0.0.1:{port}/v2/health/ready",
                extra,
            )
    logged = client.get_predictions("gbm-api")
    print(f"stead's prediction log holds {len(logged):,} rows for gbm-api")
    answered = sum(int(r["requests"] + r["warmup"]) * 100 for r in results if r["server"].startswith("stead-rows100"))
    rows = len(client.get_predictions("gbm-rows"))
    print(f"gbm-rows: {answered:,} rows answered (100-row requests, warm-ups included), {rows:,} rows in the log")

    def get(server: str, workers: int, conc: int, key: str = "rps") -> float:
        for r in results:
            if (r["server"], r["workers"], r["concurrency"]) == (server, workers, conc):
                return float(r[key])
        return float("nan")

    print("\nratios (requests/s)")
    for workers in args.workers:
        for conc in args.concurrency:
            off, on = get("stead-batch-off", workers, conc), get("stead-batch-auto", workers, conc)
            mlf, floor = get("mlflow", workers, conc), get("floor-predict", workers, conc)
            print(
                f"  w={workers} c={conc:<3} stead/mlflow {off / mlf:5.2f}x (batching {on / mlf:5.2f}x)  "
                f"stead/predict-floor {off / floor:5.2f} (batching {on / floor:5.2f})  "
                f"stead p50 - in-process predict {get('stead-batch-off', workers, conc, 'p50_ms') - inproc_1:6.2f} ms"
            )
    for workers in args.workers:
        top = max(args.concurrency)
        single, canary = get("stead-batch-off", workers, top), get("stead-canary10-off", workers, top)
        rows100 = get("stead-rows100-off", workers, top)
        print(
            f"  w={workers} c={top:<3} 10% canary / single route {canary / single:5.2f} "
            f"(cost {100 * (1 - canary / single):4.1f}%)  logged predictions/s with 100-row requests "
            f"{rows100 * 100:,.0f}"
        )
    (folder / "results.json").write_text(
        json.dumps({"inproc_ms": [inproc_df, inproc_np, inproc_1000], "runs": results})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
