"""The CLI shell: init, validate, errors, exit codes, --json, --version, --debug."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stead._version import __version__
from stead.cli import main
from stead.project import load_project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STEAD_URI", raising=False)
    return tmp_path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_init_writes_a_valid_project_and_a_store_then_changes_nothing(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["init"], capsys)
    assert code == 0
    assert "wrote" in out
    assert (project / ".stead" / "stead.db").exists()
    load_project(project / "stead.yaml")
    before = {p: p.stat().st_mtime_ns for p in project.rglob("*") if p.is_file() and "stead.db" not in p.name}
    yaml_text = (project / "stead.yaml").read_text()
    code, out, _ = run_cli(["init"], capsys)
    assert code == 0
    assert "nothing to do" in out
    assert (project / "stead.yaml").read_text() == yaml_text
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_validate_lists_every_problem_one_line_each(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "stead.yaml").write_text(
        "project: p\n"
        "models:\n"
        "  churn:\n"
        "    train: train.py:train\n"
        "    data: d.parquet\n"
        "    target: y\n"
        "    holdout: lots\n"
        "    colour: blue\n"
        "    retrain: {schedule: 'not a cron'}\n"
    )
    code, _, err = run_cli(["validate"], capsys)
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) >= 3
    assert any("models.churn.holdout" in line for line in lines)
    assert any("models.churn.colour" in line for line in lines)
    assert any("models.churn.retrain.schedule" in line for line in lines)


def test_validate_json_and_a_valid_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(["init"], capsys)
    code, out, _ = run_cli(["validate", "--json"], capsys)
    assert code == 0
    assert json.loads(out) == {"file": "stead.yaml", "valid": True, "problems": []}


HEAD = "project: p\nmodels:\n  m:\n    train: t.py:f\n    data: d\n"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        pytest.param(HEAD + "    target: 3\n", "models.m.target", id="type"),
        pytest.param(
            HEAD + "    target: y\n    nope: 1\n",
            "models.m.nope",
            id="unknown",
        ),
        pytest.param("project: !!python/object/apply:os.system ['true']\n", "project", id="python-tag"),
        pytest.param(
            HEAD + "    target: y\n    retrain: {schedule: '61 * * * *'}\n",
            "models.m.retrain.schedule",
            id="cron",
        ),
    ],
)
def test_a_broken_project_file_names_the_field(
    project: Path, capsys: pytest.CaptureFixture[str], text: str, field: str
) -> None:
    (project / "stead.yaml").write_text(text)
    code, _, err = run_cli(["validate"], capsys)
    assert code == 1
    assert err.startswith("error: ")
    assert field in err
    assert "Traceback" not in err


def test_usage_errors_exit_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["runs", "show"], capsys)
    assert code == 2
    assert err.startswith("error: ")
    code, _, err = run_cli(["no-such-command"], capsys)
    assert code == 2


def test_failures_print_error_and_hint_and_exit_1(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["runs", "show", "0123456789abcdef"], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: no run with id")
    assert lines[-1].startswith("hint: ")
    assert sum(line.startswith("hint:") for line in lines) == 1


def test_debug_shows_the_traceback(project: Path) -> None:
    from stead.errors import NotFoundError

    with pytest.raises(NotFoundError):
        main(["--debug", "runs", "show", "0123456789abcdef"])


def test_version_and_help_through_the_console_script(project: Path) -> None:
    exe = Path(sys.executable).with_name("stead")
    result = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"stead {__version__}"
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    for command in ("init", "validate", "runs", "reproduce", "serve", "deploy", "monitor", "demo", "lineage"):
        assert command in result.stdout
    result = subprocess.run(
        [str(exe), "runs", "show", "nope-nope"], capture_output=True, text=True, env={**os.environ, "STEAD_URI": "x"}
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error:")


def test_a_bad_setting_names_the_variable(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEAD_URI", "ftp://somewhere")
    code, _, err = run_cli(["runs", "list"], capsys)
    assert code == 1
    assert "STEAD_URI" in err and "ftp" in err
    monkeypatch.setenv("STEAD_URI", "postgresql://u@localhost/db")
    code, _, err = run_cli(["runs", "list"], capsys)
    assert code == 1
    assert "STEAD_ARTIFACTS" in err


def test_runs_and_datasets_listings(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    import stead

    ids = []
    for c in (0.1, 1.0):
        with stead.start_run(experiment="cli", params={"C": c, "kind": "lr"}) as run:
            run.log_metric("auc", 0.7 + c / 10)
            dataset = run.log_dataset("train", pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}))
        ids.append(run.id)
    code, out, _ = run_cli(["runs", "list", "--json", "--filter", "metrics.auc > 0.75"], capsys)
    assert code == 0
    assert [r["id"] for r in json.loads(out)] == [ids[1]]
    code, out, _ = run_cli(["runs", "show", ids[0][:8]], capsys)
    assert code == 0 and ids[0] in out and "C = 0.1" in out and "train: dataset" in out
    code, out, _ = run_cli(["runs", "compare", ids[0], ids[1], "--json"], capsys)
    rows = {(r["section"], r["key"]): r for r in json.loads(out)["rows"]}
    assert rows[("params", "C")]["differs"] is True
    assert rows[("params", "kind")]["differs"] is False
    code, out, _ = run_cli(["runs", "compare", ids[0], ids[1]], capsys)
    assert code == 0 and "* differs" in out
    code, out, _ = run_cli(["datasets", "list", "--json"], capsys)
    assert [d["id"] for d in json.loads(out)] == [dataset.id]
    code, out, _ = run_cli(["datasets", "show", dataset.id[:10], "--json"], capsys)
    shown = json.loads(out)
    assert shown["rows"] == 3 and len(shown["used_by"]) == 2
    code, out, _ = run_cli(["datasets", "show", dataset.id], capsys)
    assert code == 0 and "3 rows x 2 columns" in out
    code, out, _ = run_cli(["lineage", f"run:{ids[0]}", "--json"], capsys)
    graph = json.loads(out)
    assert {"source": f"dataset:{dataset.id}", "target": f"run:{ids[0]}", "kind": "input"} in graph["edges"]
    code, out, _ = run_cli(["lineage", f"dataset:{dataset.id}"], capsys)
    assert code == 0 and "fed:" in out
    code, out, _ = run_cli(["lineage", f"dataset:{dataset.id}", "--dot"], capsys)
    assert out.startswith("digraph lineage")
