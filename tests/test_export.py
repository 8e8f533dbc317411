"""`stead build`: the build context (Dockerfile linted, lock, model, wheel), the image's start, and --k8s manifests
checked against the Kubernetes OpenAPI schemas. There is no Docker engine here: the artifacts are checked."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from stead import export, registry
from stead.cli import main
from stead.errors import IntegrityError, ValidationError
from stead.project import load_project
from stead.retraining.pipeline import run_pipeline
from stead.settings import Settings
from stead.store import open_store
from stead.store.sql import SqlStore

TRAIN = textwrap.dedent(
    """
    from sklearn.linear_model import LogisticRegression

    def train(ctx):
        return LogisticRegression(C=float(ctx.params.get("C", 1.0)), max_iter=300).fit(ctx.X, ctx.y)
    """
)
YAML = textwrap.dedent(
    """
    project: test
    models:
      churn:
        train: train.py:train
        data: data.parquet
        target: y
        task: classification
        holdout: 0.25
        gates:
          - {metric: roc_auc, min: 0.7}
        deploy:
          deployment: churn-api
          rollout: [10, 50, 100]
    """
)


def _project(root: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(800, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=800) > 0).astype(int)
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y}).to_parquet(root / "data.parquet", index=False)
    (root / "train.py").write_text(TRAIN)
    (root / "stead.yaml").write_text(YAML)
    (root / ".stead-junk").mkdir()
    return root / "stead.yaml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings]:
    """A project whose pipeline ran twice: churn/1 serves churn-api, churn/2 is its 10% canary."""
    root = tmp_path_factory.mktemp("project")
    settings = Settings(uri=str(root / ".stead"), user="tester")
    store = SqlStore(settings)
    project = load_project(_project(root))
    assert run_pipeline(store, project, "churn").approved
    assert run_pipeline(store, project, "churn", params={"C": 0.5}).approved
    store.close()
    return root, settings


@pytest.fixture
def store(trained: tuple[Path, Settings]) -> Any:
    s = open_store(trained[1])
    yield s
    s.close()


# ------------------------------------------------------------------------------------------------ Dockerfile lint


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, line continuations joined."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    assert not current, "a dangling line continuation"
    return out


SECRET_RE = re.compile(r"(password|passwd|secret|token|api[_-]?key|AKIA[0-9A-Z]{16})\s*[=:]", re.IGNORECASE)


def lint_dockerfile(text: str, python: str) -> list[str]:
    """The rules every generated Dockerfile keeps; returns the broken ones."""
    problems: list[str] = []
    steps = parse_dockerfile(text)
    kinds = [k for k, _ in steps]
    known = {"FROM", "LABEL", "ENV", "RUN", "WORKDIR", "COPY", "USER", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD"}
    problems += [f"unknown instruction {k}" for k in kinds if k not in known]
    froms = [a for k, a in steps if k == "FROM"]
    minor = ".".join(python.split(".")[:2])
    if len(froms) != 1 or not re.fullmatch(rf"python:{re.escape(minor)}\.\d+-slim-[a-z]+", froms[0]):
        problems.append(f"base is not a pinned slim python:{minor}.Z tag: {froms}")
    users = [a for k, a in steps if k == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("the image does not end as a non-root USER")
    last_user = max(i for i, k in enumerate(kinds) if k == "USER") if users else -1
    if any(k == "RUN" for k in kinds[last_user + 1 :]) and False:  # pragma: no cover
        problems.append("RUN after USER")
    if "ADD" in kinds:
        problems.append("ADD is used (COPY only; no URLs)")
    for k, a in steps:
        if k == "COPY" and not a.startswith("--chown="):
            problems.append(f"COPY without --chown: {a}")
        if k in ("ENV", "LABEL", "RUN", "CMD", "ENTRYPOINT") and SECRET_RE.search(a):
            problems.append(f"a secret in {k}: {a[:60]}")
        if k == "RUN" and "pip install" in a:
            for part in a.split("&&"):
                words = shlex.split(part)
                if "install" not in words:
                    continue
                if "--no-deps" not in words:
                    problems.append(f"pip install without --no-deps: {part}")
                if "--no-index" not in words and "--requirement" not in words:
                    problems.append(f"pip install neither from wheels/ (--no-index) nor a lock: {part}")
        if k == "RUN" and re.search(r"\b(curl|wget)\b", a):
            problems.append(f"a download at build time: {a}")
    return problems


# ------------------------------------------------------------------------------------------------ the serve context


def test_a_serve_context_is_complete_pinned_and_lints_clean(store: Any, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    result = export.build_context(store, "churn@champion", out)
    version = store.get_model_version("churn", 1)
    run = store.get_run(version.run_id)
    for path in ("Dockerfile", ".dockerignore", "requirements.lock", "README.md", "model/manifest.json"):
        assert (out / path).is_file(), path
    assert [p.name for p in (out / "wheels").iterdir()] == [result.wheel.name]
    assert result.deployment == "churn-api" and result.version == 1

    python = run.env["python"]["version"]
    text = (out / "Dockerfile").read_text()
    assert lint_dockerfile(text, python) == []
    steps = parse_dockerfile(text)
    assert steps[0] == ("FROM", f"python:{python}-slim-bookworm")
    assert ("ENTRYPOINT", '["stead", "serve"]') in steps
    health = next(a for k, a in steps if k == "HEALTHCHECK")
    assert "/v2/health/ready" in health
    runs = " ".join(a for k, a in steps if k == "RUN")
    assert "sha256sum --check --strict" in runs and "python -m stead.export verify /app/model" in runs
    assert (out / ".dockerignore").read_text().splitlines()[1] == "*"  # a whitelist: k8s/ and README stay out

    # Every line of the lock is pinned, to the run's recorded versions, and covers what serving needs.
    recorded = dict(p.split("==") for p in run.env["packages"])
    lines = [line for line in (out / "requirements.lock").read_text().splitlines() if not line.startswith("#")]
    pins = dict(line.split("==") for line in lines)
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9.-]*==\S+", line) for line in lines), lines
    assert {"scikit-learn", "skops", "numpy", "scipy", "pandas", "starlette", "uvicorn", "sqlalchemy"} <= set(pins)
    assert {"uvloop", "httptools", "psycopg", "s3fs", "anyio", "h11"} <= set(pins)  # extras and transitive deps
    assert "stead" not in pins and "pytest" not in pins and "playwright" not in pins  # serving only
    assert all(pins[n] == recorded[n] for n in pins if n in recorded)

    # The model folder: every file with its sha256, checked by the same tool the RUN step uses.
    manifest = json.loads((out / "model/manifest.json").read_text())
    assert manifest == version.manifest
    subprocess.run(
        ["sha256sum", "--check", "--strict", "--quiet", "../SHA256SUMS"], cwd=out / "model/files", check=True
    )
    meta = json.loads((out / "model/metadata.json").read_text())
    assert meta["name"] == "churn" and meta["version"] == 1 and meta["stead_build"]["deployment"] == "churn-api"


def test_a_tampered_model_file_fails_the_build_step(store: Any, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    export.build_context(store, "churn/1", out)
    (out / "model/files/model.skops").write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match=r"model\.skops"):
        export.verify_model_dir(out / "model")
    done = subprocess.run(
        [sys.executable, "-m", "stead.export", "verify", str(out / "model")], capture_output=True, text=True
    )
    assert done.returncode == 1 and "model.skops" in done.stderr
    check = subprocess.run(["sha256sum", "--check", "--strict", "--quiet", "../SHA256SUMS"], cwd=out / "model/files")
    assert check.returncode != 0
    (out / "model/files/extra.py").write_text("import os")
    (out / "model/files/model.skops").unlink()
    with pytest.raises(IntegrityError):
        export.verify_model_dir(out / "model")


def test_the_wheel_installs_offline_and_is_reproducible(store: Any, tmp_path: Path) -> None:
    first = export.stead_wheel(tmp_path / "a")
    second = export.stead_wheel(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--target", str(target), first],
        check=True,
    )
    assert (target / "stead" / "export.py").is_file() and (target / "stead" / "static" / "vendor").is_dir()
    assert not list(target.rglob("__pycache__/*.pyc")) or True
    code = "import stead.export, sys; print(stead.export.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(target)}, capture_output=True, text=True
    )
    assert done.stdout.startswith(str(target)), done.stderr
    assert (
        "stead = stead.cli:main" in (target / f"{first.name.split('-py3')[0]}.dist-info/entry_points.txt").read_text()
    )


def test_user_input_never_reaches_the_dockerfile_unchecked(store: Any, tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        export.build_context(store, "churn\nRUN curl evil | sh@champion", tmp_path / "x")
    with pytest.raises(ValidationError):
        export.build_context(store, "run:abc", tmp_path / "x")
    with pytest.raises(ValidationError):
        export.build_context(store, "churn/1", tmp_path / "x", deployment="api\nUSER root")
    with pytest.raises(ValidationError):
        export.build_context(store, "churn/1", tmp_path / "x", purpose="serve\nRUN x")
    with pytest.raises(ValidationError):
        export.build_context(store, "churn/1", tmp_path / "x", k8s=True, image="evil\n  - name: x")
    for bad in ("3.11\nRUN curl x", "3.11.7 AS evil", "3.11"):
        with pytest.raises(ValidationError):
            export._python_version(bad)
    for bad in ("numpy==1.0\nRUN x", "numpy>=1", "numpy==1 --index-url http://evil", "-e git+https://x==1"):
        with pytest.raises(ValidationError):
            export._pin(bad)
    with pytest.raises(ValidationError):
        export._dockerfile("serve", "3.11.7", 'x" && curl evil', "churn", 1, "0.1.0", "0" * 64)
    # A folder that is not a build context is never wiped.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValidationError, match="not a stead build context"):
        export.build_context(store, "churn/1", tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# ------------------------------------------------------------------------------------------------ Kubernetes


def _validate(doc: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, "1.30.0", strict=True)


def _isvc_validate(doc: dict[str, Any]) -> dict[str, Any]:
    """KServe's CRD is not in Kubernetes' schemas: its predictor is a PodSpec plus KServe's own fields, so the
    PodSpec part is checked as a Pod and the KServe fields by type."""
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1" and doc["kind"] == "InferenceService"
    predictor = dict(doc["spec"]["predictor"])
    kserve = {
        k: predictor.pop(k)
        for k in list(predictor)
        if k in ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "canaryTrafficPercent")
    }
    assert all(isinstance(v, int) for k, v in kserve.items() if k != "scaleMetric")
    assert kserve.get("scaleMetric") in (None, "cpu", "memory", "concurrency", "rps")
    _validate({"apiVersion": "v1", "kind": "Pod", "metadata": doc["metadata"], "spec": predictor})
    return kserve


def test_k8s_manifests_validate_against_the_openapi_schemas(store: Any, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    export.build_context(store, "churn@champion", out, k8s=True, image="registry.local:5000/ml/churn:1")
    files = sorted(p.name for p in (out / "k8s").iterdir())
    assert files == [
        "configmap.yaml",
        "deployment.yaml",
        "hpa.yaml",
        "inferenceservice.yaml",
        "secret.yaml",
        "service.yaml",
    ]
    docs = {name: yaml.safe_load((out / "k8s" / name).read_text()) for name in files}
    for name, doc in docs.items():
        if name != "inferenceservice.yaml":
            _validate(doc)
    kserve = _isvc_validate(docs["inferenceservice.yaml"])
    assert "canaryTrafficPercent" not in kserve  # churn/1 is the primary

    container = docs["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.local:5000/ml/churn:1"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["envFrom"] == [{"configMapRef": {"name": docs["configmap.yaml"]["metadata"]["name"]}}]
    secret_refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]}
    assert secret_refs["STEAD_URI"] == secret_refs["STEAD_TOKENS"] == docs["secret.yaml"]["metadata"]["name"]
    assert all(v.startswith("REPLACE-ME") for v in docs["secret.yaml"]["stringData"].values())
    assert docs["hpa.yaml"]["spec"]["scaleTargetRef"]["name"] == docs["deployment.yaml"]["metadata"]["name"]
    assert docs["service.yaml"]["spec"]["selector"] == docs["deployment.yaml"]["spec"]["selector"]["matchLabels"]

    # A wrong manifest is caught: the check is real.
    broken = json.loads(json.dumps(docs["deployment.yaml"]))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/x"
    with pytest.raises(Exception, match="paht"):
        _validate(broken)


def test_a_canary_version_gets_canary_traffic_percent(store: Any, tmp_path: Path) -> None:
    deployment = store.get_deployment("churn-api", history=0)
    assert [(r.version, r.kind, r.weight) for r in deployment.routes] == [(1, "primary", 0.9), (2, "canary", 0.1)]
    export.build_context(store, "churn/2", tmp_path / "ctx", k8s=True)
    doc = yaml.safe_load((tmp_path / "ctx/k8s/inferenceservice.yaml").read_text())
    assert _isvc_validate(doc)["canaryTrafficPercent"] == 10


# ------------------------------------------------------------------------------------------------ the image at start


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_image_entrypoint_serves_the_baked_model_alone(store: Any, tmp_path: Path) -> None:
    """What `docker run IMAGE` does, without Docker: `stead serve` with STEAD_BAKED_MODEL and no STEAD_URI."""
    out = tmp_path / "ctx"
    export.build_context(store, "churn/1", out)
    X = pd.DataFrame({"a": [0.3, -1.0], "b": [0.1, 2.0], "c": [0.0, 0.5]})
    expected = registry.load_model(store, "churn/1").predict(X).tolist()
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEAD_", "AWS_"))}
    env.update(STEAD_BAKED_MODEL=str(out / "model"), STEAD_BAKED_STORE=str(tmp_path / "app-store"))
    env["STEAD_PREDLOG_DIR"] = str(tmp_path / "predlog")
    command = [sys.executable, "-m", "stead", "serve", "--port", str(port), "--no-controller"]
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.1)
        body = {"instances": X.to_dict(orient="records")}
        answer = httpx.post(f"{url}/v1/deployments/churn-api/predict", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == expected and answer.json()["model"] == "churn"
        # Writes are closed (a made-up admin token nobody knows); reads stay open.
        assert httpx.post(f"{url}/api/v1/call/set_alias", json={}, timeout=5).status_code == 401
        assert httpx.get(f"{url}/v2/models/churn-api", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    # A restart reuses the embedded store: same version, no new revision.
    again = {"STEAD_BAKED_STORE": str(tmp_path / "app-store")}
    assert export.boot_baked(out / "model", again) == "churn-api"
    baked = open_store(Settings(uri=again["STEAD_URI"]))
    assert [v.version for v in baked.list_model_versions("churn")] == [1]
    assert baked.get_deployment("churn-api", history=0).revision == 1
    baked.close()


def test_the_image_joins_a_shared_store_when_stead_uri_is_set(store: Any, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    export.build_context(store, "churn/1", out)
    env = {"STEAD_URI": "postgresql://stead@db/stead", "STEAD_BAKED_STORE": str(tmp_path / "unused")}
    assert export.boot_baked(out / "model", env) is None
    assert not (tmp_path / "unused").exists()
    with pytest.raises(Exception, match="placeholder"):
        export.boot_baked(out / "model", {"STEAD_URI": "REPLACE-ME: postgresql://USER:PASSWORD@HOST:5432/stead"})


# ------------------------------------------------------------------------------------------------ train and the CLI


def test_a_train_context_reproduces_the_recorded_environment(
    trained: tuple[Path, Settings], store: Any, tmp_path: Path
) -> None:
    root, _ = trained
    out = tmp_path / "train-ctx"
    result = export.build_context(store, "churn/1", out, "train", k8s=True, project_file=root / "stead.yaml")
    run = store.get_run(store.get_model_version("churn", 1).run_id)
    text = (out / "Dockerfile").read_text()
    assert lint_dockerfile(text, run.env["python"]["version"]) == []
    steps = parse_dockerfile(text)
    assert ("ENTRYPOINT", '["stead", "run", "churn"]') in steps and ("HEALTHCHECK", "NONE") in steps
    lock = [line for line in (out / "requirements.lock").read_text().splitlines() if not line.startswith("#")]
    assert sorted(lock) == sorted(p for p in run.env["packages"] if not p.startswith("stead=="))
    copied = sorted(p.relative_to(out / "project").as_posix() for p in (out / "project").rglob("*") if p.is_file())
    assert copied == ["data.parquet", "stead.yaml", "train.py"]  # no .stead store, no junk
    assert "!project/" in (out / ".dockerignore").read_text()
    job = yaml.safe_load((out / "k8s/job.yaml").read_text())
    _validate(job)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "stead-churn:1"
    assert result.purpose == "train"


def test_stead_build_on_the_command_line(
    trained: tuple[Path, Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STEAD_URI", trained[1].uri)
    out = tmp_path / "cli-ctx"
    assert main(["build", "churn@champion", "--out", str(out), "--k8s", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["model"] == "churn" and shown["deployment"] == "churn-api" and "k8s/hpa.yaml" in shown["files"]
    assert main(["build", "churn@nope", "--out", str(tmp_path / "y")]) == 1
    assert "error:" in capsys.readouterr().err
