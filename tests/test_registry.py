"""The model registry on every backend: flavors round-trip in a fresh process, dense version numbers under
concurrency, compare-and-set aliases with their audit log, integrity, names, states and the CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import stead
from stead.client import Client
from stead.errors import ConflictError, IntegrityError, NotFoundError, ValidationError
from stead.settings import Settings

LOADER = textwrap.dedent(
    """
    import json, sys
    import pandas as pd
    import stead
    frame = pd.read_parquet(sys.argv[2])
    model = stead.Client().load_model(sys.argv[1])
    out = {"predict": pd.Series(list(model.predict(frame))).tolist()}
    if hasattr(model, "predict_proba"):
        out["proba"] = [list(map(float, row)) for row in model.predict_proba(frame)]
    print(json.dumps(out))
    """
)


class Doubler:
    def predict(self, df: pd.DataFrame) -> Any:
        return df.sum(axis=1).to_numpy() * 2


def _env(settings: Settings, extra_path: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEAD_")}
    env["STEAD_URI"] = settings.uri
    if settings.artifacts:
        env["STEAD_ARTIFACTS"] = settings.artifacts
    if settings.token:
        env["STEAD_TOKEN"] = settings.token
    env["STEAD_USER"] = settings.user
    paths = [str(Path(__file__).parent)] + ([str(extra_path)] if extra_path else [])
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    return env


def load_elsewhere(settings: Settings, ref: str, frame: pd.DataFrame, tmp_path: Path, extra: Path | None = None) -> Any:
    """Load ``ref`` in a fresh interpreter and return its predictions."""
    data = tmp_path / "frame.parquet"
    frame.to_parquet(data)
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", LOADER, ref, str(data)],
        capture_output=True,
        text=True,
        env=_env(settings, extra),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def data() -> tuple[pd.DataFrame, pd.Series[Any]]:
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"tenure": rng.normal(24, 8, 60), "charges": rng.normal(70, 20, 60)})
    y = pd.Series((X["tenure"] < 24).astype(int), name="churned")
    return X, y


# ------------------------------------------------------------------------------------------ flavors


def test_sklearn_round_trip_in_a_fresh_process(client: Client, settings: Settings, data: Any, tmp_path: Path) -> None:
    X, y = data
    model = LogisticRegression().fit(X, y)
    with stead.start_run(experiment="churn", store=client.store) as run:
        run.log_dataset("train", X.assign(churned=y))
        mv = run.log_model(model, name="churn", input_example=X.head(5))
    assert (mv.name, mv.version, mv.state, mv.flavor, mv.run_id) == ("churn", 1, "candidate", "sklearn", run.id)
    assert [c["name"] for c in mv.signature["inputs"]] == ["tenure", "charges"]
    assert set(mv.manifest) == {"model.skops", "stead-model.json"}
    assert client.get_run(run.id).outputs[0].version == 1
    client.set_alias("churn", "champion", 1)
    got = load_elsewhere(settings, "churn@champion", X, tmp_path)
    assert got["predict"] == model.predict(X).tolist()
    np.testing.assert_allclose(got["proba"], model.predict_proba(X), rtol=0, atol=0)


def test_log_model_takes_the_signature_from_the_train_dataset(client: Client, data: Any) -> None:
    X, y = data
    with stead.start_run(experiment="churn", store=client.store) as run:
        run.log_dataset("train", X.assign(churned=y))
        mv = run.log_model(LogisticRegression().fit(X, y), name="churn")
    assert [c["name"] for c in mv.signature["inputs"]] == ["tenure", "charges"]
    assert mv.signature["outputs"][0]["name"] == "predictions"
    assert any(r.startswith("scikit-learn==") for r in mv.requirements)


def test_onnx_round_trip_in_a_fresh_process(client: Client, settings: Settings, data: Any, tmp_path: Path) -> None:
    X, y = data
    model = LogisticRegression().fit(X, y)
    mv = client.register_model("churn-onnx", model, input_example=X.head(), convert="onnx")
    assert mv.flavor == "onnx"
    here = client.load_model("churn-onnx/1")
    got = load_elsewhere(settings, "churn-onnx/1", X, tmp_path)
    assert got["predict"] == here.predict(X).tolist() == model.predict(X).tolist()
    np.testing.assert_allclose(got["proba"], here.predict_proba(X), rtol=0, atol=0)


def test_import_path_round_trip_in_a_fresh_process(client: Client, settings: Settings, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "stead_reg_model.py").write_text(
        textwrap.dedent(
            """
            class Linear:
                def load_context(self, context):
                    with open(context.artifacts["coef"]) as fh:
                        self.coef = [float(x) for x in fh.read().split()]

                def predict(self, df):
                    return (df.to_numpy() * self.coef).sum(axis=1)
            """
        )
    )
    coef = tmp_path / "coef.txt"
    coef.write_text("0.5 -2")
    sys.path.insert(0, str(src))
    try:
        X = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.5, 0.25, 0.0]})
        mv = client.register_model("linear", "stead_reg_model:Linear", input_example=X, artifacts={"coef": coef})
        assert mv.flavor == "python" and not mv.allow_pickle
        got = load_elsewhere(settings, "linear/1", X, tmp_path, extra=src)
        assert got["predict"] == [-0.5, 0.5, 1.5]
    finally:
        sys.path.remove(str(src))
        sys.modules.pop("stead_reg_model", None)


def test_pickle_round_trip_only_with_the_opt_in(client: Client, settings: Settings, tmp_path: Path) -> None:
    X = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    with pytest.raises(ValidationError, match="allow_pickle=True"):
        client.register_model("doubler", Doubler(), input_example=X)
    mv = client.register_model("doubler", Doubler(), input_example=X, allow_pickle=True)
    assert mv.flavor == "pickle" and mv.allow_pickle and mv.version == 1
    assert load_elsewhere(settings, "doubler/1", X, tmp_path)["predict"] == [8.0, 12.0]


def test_a_pickle_version_without_the_opt_in_refuses_until_trusted(client: Client) -> None:
    X = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    mv = client.register_model("doubler", Doubler(), input_example=X, allow_pickle=True)
    # as an importer would record it: the same files, no opt-in
    bare = client.store.create_model_version("imported", mv.flavor, dict(mv.manifest), signature=mv.signature)
    assert not bare.allow_pickle
    with pytest.raises(ValidationError, match=r"stead models trust imported/1 --reason") as info:
        client.load_model("imported/1")
    assert "stead models trust imported/1" in (info.value.hint or "")
    with pytest.raises(ValidationError, match="reason"):
        client.trust("imported", 1, "  ")
    trusted = client.trust("imported", 1, "we built it ourselves")
    assert trusted.allow_pickle
    assert list(client.load_model("imported/1").predict(X)) == [8.0, 12.0]
    audit = client.audit_log("model:imported/1")
    assert [(a["action"], a["reason"], a["actor"]) for a in audit] == [("trust", "we built it ourselves", "tester")]


# ------------------------------------------------------------------------------------------ concurrency


def _register_one(settings: Settings, barrier: Any, out: Any) -> None:
    from stead import tracking

    tracking._stores.clear()  # a forked child opens its own connections; the parent's stay the parent's
    try:
        client = Client(settings=settings)
        X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
        model = LogisticRegression().fit(X, [0, 0, 1, 1])
        barrier.wait(timeout=60)
        out.put(("ok", client.register_model("busy", model, input_example=X).version))
    except BaseException as exc:  # report every failure to the parent
        out.put(("error", repr(exc)))


@pytest.mark.slow
def test_twenty_processes_get_dense_unique_versions(client: Client, settings: Settings) -> None:
    client.list_models()  # the store exists and is migrated before the writers start
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(20), ctx.Queue()
    procs = [ctx.Process(target=_register_one, args=(settings, barrier, out)) for _ in range(20)]
    for p in procs:
        p.start()
    results = [out.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [r for r in results if r[0] == "error"] == []
    assert sorted(r[1] for r in results) == list(range(1, 21))
    assert [v.version for v in client.list_model_versions("busy")] == list(range(20, 0, -1))
    assert client.list_models()[0]["latest_version"] == 20


def _move_alias(settings: Settings, barrier: Any, go: Any, out: Any, target: int) -> None:
    from stead import tracking

    tracking._stores.clear()  # a forked child opens its own connections; the parent's stay the parent's
    try:
        client = Client(settings=settings)
        go.wait(timeout=60)
        barrier.wait(timeout=60)
        client.set_alias("m", "champion", target, expected=1, reason=f"to {target}")
        out.put(("won", target))
    except ConflictError:
        out.put(("conflict", target))
    except BaseException as exc:
        out.put(("error", repr(exc)))


def test_two_processes_moving_one_alias_exactly_one_wins(client: Client, settings: Settings) -> None:
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    model = LogisticRegression().fit(X, [0, 0, 1, 1])
    for _ in range(3):
        client.register_model("m", model, input_example=X)
    client.set_alias("m", "champion", 1, expected=None)
    seen: list[int] = []
    missing: list[str] = []
    stop = threading.Event()

    def read() -> None:
        reader = Client(settings=settings)
        while not stop.is_set():
            try:
                seen.append(reader.get_model_version("m", "champion").version)
            except NotFoundError as exc:
                missing.append(str(exc))

    ctx = multiprocessing.get_context("fork")
    barrier, go, out = ctx.Barrier(2), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_move_alias, args=(settings, barrier, go, out, v)) for v in (2, 3)]
    for p in procs:  # fork before the reader thread starts: a child must not inherit a lock it holds
        p.start()
    thread = threading.Thread(target=read)
    thread.start()
    try:
        while not seen and not missing:
            time.sleep(0.01)
        go.set()
        results = sorted(out.get(timeout=120) for _ in procs)
        for p in procs:
            p.join(timeout=60)
        time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    outcomes = [r[0] for r in results]
    assert sorted(outcomes) == ["conflict", "won"], results
    winner = next(r[1] for r in results if r[0] == "won")
    loser = next(r[1] for r in results if r[0] == "conflict")
    assert client.get_model_version("m", "champion").version == winner
    history = client.alias_history("m")
    assert [(h.outcome, h.from_version, h.to_version) for h in history[:1]] == [("moved", None, 1)]
    assert sorted((h.outcome, h.to_version) for h in history[1:]) == sorted([("moved", winner), ("conflict", loser)])
    assert all(h.actor == "tester" for h in history)
    assert {h.reason for h in history[1:]} == {"to 2", "to 3"}
    assert missing == [] and set(seen) <= {1, 2, 3}


def test_compare_and_set_semantics(client: Client) -> None:
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    model = LogisticRegression().fit(X, [0, 0, 1, 1])
    client.register_model("m", model, input_example=X)
    client.register_model("m", model, input_example=X)
    assert client.set_alias("m", "challenger", 1, expected=None).from_version is None
    with pytest.raises(ConflictError, match="moved in between"):
        client.set_alias("m", "challenger", 2, expected=None)
    with pytest.raises(ConflictError):
        client.set_alias("m", "challenger", 2, expected=2)
    move = client.set_alias("m", "challenger", 2, expected=1, reason="better auc")
    assert (move.from_version, move.to_version, move.reason, move.outcome) == (1, 2, "better auc", "moved")
    assert client.set_alias("m", "challenger", 1).from_version == 2  # unconditional
    assert client.get_model_version("m", 1).aliases == ["challenger"]
    with pytest.raises(NotFoundError, match="no version 7"):
        client.set_alias("m", "challenger", 7)
    with pytest.raises(ConflictError):
        client.delete_alias("m", "challenger", expected=2)
    assert client.delete_alias("m", "challenger", expected=1).outcome == "deleted"
    with pytest.raises(NotFoundError) as info:
        client.get_model_version("m", "challenger")
    assert "Known aliases: (none)" in info.value.message
    assert info.value.hint == "Set one with: stead alias m challenger 2"
    outcomes = [h.outcome for h in client.alias_history("m")]
    assert outcomes == ["moved", "conflict", "conflict", "moved", "moved", "conflict", "deleted"]


# ------------------------------------------------------------------------------------------ integrity and names


def test_flipping_one_byte_of_a_stored_file_is_an_integrity_error(client: Client, data: Any) -> None:
    X, y = data
    mv = client.register_model("churn", LogisticRegression().fit(X, y), input_example=X.head())
    assert client.load_model("churn/1").predict(X).tolist()
    path = client.store.artifacts.local_path(mv.manifest["model.skops"])
    if path is None:
        pytest.skip("the artifact store of this backend is not a local folder")
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    os.chmod(path, 0o644)
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=r"model churn/1: file 'model\.skops'"):
        client.load_model("churn/1")
    path.unlink()
    with pytest.raises(IntegrityError, match=r"'model\.skops'.*missing"):
        client.load_model("churn/1")


@pytest.mark.parametrize("bad", ["a/b", "a..b", "a\nb", "a b", "x" * 300])
def test_bad_model_names_and_aliases_are_refused(client: Client, bad: str) -> None:
    X = pd.DataFrame({"a": [0.0, 1.0]})
    model = LogisticRegression().fit(X, [0, 1])
    with pytest.raises(ValidationError, match=r"pattern \^\[A-Za-z0-9\]"):
        client.register_model(bad, model, input_example=X)
    client.register_model("ok", model, input_example=X)
    with pytest.raises(ValidationError, match=r"pattern \^\[A-Za-z0-9\]"):
        client.set_alias("ok", bad, 1)
    with pytest.raises(ValidationError, match="all digits"):
        client.set_alias("ok", "42", 1)


def test_states_follow_the_allowed_transitions(client: Client) -> None:
    X = pd.DataFrame({"a": [0.0, 1.0]})
    model = LogisticRegression().fit(X, [0, 1])
    client.register_model("s", model, input_example=X)
    client.register_model("s", model, input_example=X)
    gates = [{"gate": "roc_auc >= 0.8", "passed": True, "value": 0.9}]
    approved = client.set_version_state("s", 1, "approved", reason="gates passed", gate_results=gates)
    assert (approved.state, approved.state_reason, approved.gate_results) == ("approved", "gates passed", gates)
    assert client.set_version_state("s", 1, "serving").state == "serving"
    assert client.set_version_state("s", 1, "retired").state == "retired"
    client.set_version_state("s", 2, "rejected", reason="auc too low")
    with pytest.raises(ConflictError, match="rejected: it cannot become serving"):
        client.set_version_state("s", 2, "serving")
    with pytest.raises(ValidationError, match="not one of"):
        client.set_version_state("s", 2, "golden")
    assert [a["details"]["to"] for a in client.audit_log("model:s/")] == ["approved", "serving", "retired", "rejected"]


def test_not_found_errors_say_what_exists(client: Client) -> None:
    with pytest.raises(NotFoundError, match="no model named 'nope'"):
        client.get_model_version("nope", 1)
    X = pd.DataFrame({"a": [0.0, 1.0]})
    client.register_model("there", LogisticRegression().fit(X, [0, 1]), input_example=X)
    with pytest.raises(NotFoundError, match="no version 5") as info:
        client.get_model_version("there", 5)
    assert "latest version is 1" in (info.value.hint or "")
    assert client.get_model_version("there", "1").version == 1


# ------------------------------------------------------------------------------------------ CLI


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from stead.cli import main; sys.exit(main())", *args],
        capture_output=True,
        text=True,
        env=_env(settings),
        timeout=120,
    )


def test_cli_models_and_alias(client: Client, settings: Settings, data: Any) -> None:
    X, y = data
    model = LogisticRegression().fit(X, y)
    client.register_model("churn", model, input_example=X.head())
    client.register_model("churn", model, input_example=X.head())
    client.set_alias("churn", "challenger", 2)
    done = _cli(settings, "alias", "churn", "champion", "1", "--reason", "first release")
    assert done.returncode == 0, done.stderr
    assert "churn@champion -> version 1" in done.stdout
    listed = json.loads(_cli(settings, "models", "list", "--json").stdout)
    assert listed[0]["name"] == "churn" and listed[0]["latest_version"] == 2
    assert listed[0]["aliases"] == {"champion": 1, "challenger": 2}
    shown = json.loads(_cli(settings, "models", "show", "churn", "--json").stdout)
    assert [v["version"] for v in shown["versions"]] == [2, 1]
    assert shown["alias_history"][-1]["reason"] == "first release"
    history = json.loads(_cli(settings, "alias", "churn", "--history", "--json").stdout)
    assert [h["alias"] for h in history] == ["challenger", "champion"]
    text = _cli(settings, "models", "show", "churn")
    assert "champion: - -> 1" in text.stdout
    bad = _cli(settings, "alias", "churn", "nope-alias", "9")
    assert bad.returncode == 1 and "no version 9" in bad.stderr and "Traceback" not in bad.stderr
    missing = _cli(settings, "lineage", "churn@nope")
    assert missing.returncode == 1
    assert "error: Model 'churn' has no alias 'nope'. Known aliases: challenger, champion." in missing.stderr
    assert "hint: Set one with: stead alias churn nope 2" in missing.stderr
    trust = _cli(settings, "models", "trust", "churn/1", "--reason", "audited")
    assert trust.returncode == 0, trust.stderr
    assert client.audit_log("model:churn/1")[-1]["reason"] == "audited"
