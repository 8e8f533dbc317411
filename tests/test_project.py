# ruff: noqa: E501
from __future__ import annotations

from pathlib import Path

import pytest

from stead.errors import ConfigError
from stead.project import (
    INIT_TEMPLATE,
    ExecutorSpec,
    Project,
    load_project,
    parse_duration,
    parse_project,
    validate_file,
    validate_text,
    write_template,
)

# Copied from CONTRACT.md, section `stead.yaml`.
CONTRACT_EXAMPLE = """\
project: churn
models:
  churn:
    train: train.py:train            # a function (ctx) -> fitted model; ctx gives data, params, run
    data: data/churn.parquet         # or a loader "module:function"
    target: churned
    task: classification             # or regression; inferred from the target when left out
    holdout: 0.2                     # share of rows kept out for evaluation and gates
    executor: local                  # or {type: ray, address: "ray://…"}
    gates:                           # all must pass before a version may serve
      - {metric: roc_auc, min: 0.80}           # lower-is-better metrics (log_loss, mae, rmse, mape) take max:
      - {metric: roc_auc, vs_champion: 0.005}  # on the same holdout, no worse than the champion by more than this, in the metric's better direction
    deploy:
      deployment: churn-api
      rollout: [10, 50, 100]         # canary steps in percent
      analysis: {min_requests: 500, max_error_rate: 0.01, max_p99_ms: 50, max_metric_drop: 0.02, max_prediction_drift: 0.1}
      # a canary must stay within these limits AND not be significantly worse than the primary;
      # max_prediction_drift (off when left out) bounds the Jensen-Shannon distance (0-1) between
      # the canary's and the primary's predictions over the same window
    monitor:
      window: 1000                   # predictions per window, or a duration like "1h"
      drift: {threshold: 0.3}        # share of drifted features that raises an alert
      performance: {metric: accuracy, min: 0.85}
      notify: [{webhook: "https://hooks.example/ml"}, {command: ["notify-send", "stead"]}]
    serving:
      batching: {max_batch: 64, max_wait_ms: 2}   # adaptive batching; omit to serve one request per call
      body_limit_mb: 10
    retrain:
      schedule: "0 3 * * 1"          # cron
      on: [drift, performance, new_data]   # YAML 1.1 reads a bare `on` as true: the loader must keep it as the key "on"
      cooldown: 6h
"""

MINIMAL = """\
project: demo
models:
  churn:
    train: train.py:train
    data: data/churn.parquet
    target: churned
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stead.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def with_model_lines(*lines: str) -> str:
    """MINIMAL plus extra lines under models.churn (indented by the caller's 4 spaces)."""
    return MINIMAL + "".join(f"    {line}\n" for line in lines)


def test_template_is_valid_and_commented(tmp_path: Path) -> None:
    assert validate_text(INIT_TEMPLATE) == []
    spec = parse_project(INIT_TEMPLATE).model("churn")
    assert spec.retrain.on == ["drift", "performance", "new_data"]
    assert spec.deploy is not None and spec.deploy.rollout == [10, 50, 100]
    # every key line of the template carries a comment
    for line in INIT_TEMPLATE.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and ":" in stripped and not stripped.startswith("models:"):
            assert "#" in line, line


def test_write_template_writes_once(tmp_path: Path) -> None:
    assert write_template(tmp_path) is True
    path = tmp_path / "stead.yaml"
    assert path.read_text(encoding="utf-8") == INIT_TEMPLATE
    assert load_project(path).project == "churn"
    path.write_text("project: mine\n", encoding="utf-8")
    assert write_template(tmp_path) is False
    assert path.read_text(encoding="utf-8") == "project: mine\n"


def test_contract_example_loads(tmp_path: Path) -> None:
    project = load_project(write(tmp_path, CONTRACT_EXAMPLE))
    assert project.project == "churn"
    assert project.source == tmp_path / "stead.yaml"
    assert project.resolve("data/churn.parquet") == tmp_path / "data" / "churn.parquet"
    spec = project.model("churn")
    assert spec.train_entrypoint.target == "train.py"
    assert spec.train_entrypoint.function == "train"
    assert spec.train_entrypoint.is_path
    assert spec.data_loader is None
    assert spec.task == "classification"
    assert spec.holdout == 0.2
    assert spec.executor == ExecutorSpec(type="local")
    assert [(g.metric, g.min, g.vs_champion) for g in spec.gates] == [("roc_auc", 0.8, None), ("roc_auc", None, 0.005)]
    assert spec.deploy is not None
    assert spec.deploy.deployment == "churn-api"
    assert spec.deploy.analysis.max_p99_ms == 50
    assert spec.deploy.analysis.max_prediction_drift == 0.1
    assert spec.monitor.window_rows == 1000
    assert spec.monitor.window_seconds is None
    assert spec.monitor.performance is not None and spec.monitor.performance.min == 0.85
    assert spec.monitor.notify[0].webhook == "https://hooks.example/ml"
    assert spec.monitor.notify[1].command == ["notify-send", "stead"]
    assert spec.serving.batching is not None and spec.serving.batching.max_batch == 64
    # `on` is the key "on" holding a list, not the boolean True
    assert "on" in spec.retrain.model_dump()
    assert spec.retrain.on == ["drift", "performance", "new_data"]
    assert spec.retrain.schedule == "0 3 * * 1"
    assert spec.retrain.cooldown_seconds == 6 * 3600
    assert spec.retrain.triggers == {"drift", "performance", "new_data", "schedule", "manual"}
    assert Project.model_validate(project.model_dump()).model_dump() == project.model_dump()


def test_defaults(tmp_path: Path) -> None:
    spec = load_project(write(tmp_path, MINIMAL)).model("churn")
    assert spec.task is None
    assert spec.holdout == 0.2
    assert spec.executor.type == "local"
    assert spec.gates == []
    assert spec.deploy is None
    assert spec.monitor.window == 1000
    assert spec.monitor.drift.threshold == 0.3
    assert spec.monitor.notify == []
    assert spec.serving.batching is None
    assert spec.serving.body_limit_mb == 10
    assert spec.retrain.schedule is None
    assert spec.retrain.on == ["manual"]


def test_yaml_11_booleans_stay_strings() -> None:
    project = parse_project(MINIMAL.replace("churned", "yes").replace("project: demo", "project: off"))
    assert project.project == "off"
    assert project.model("churn").target == "yes"
    assert validate_text(with_model_lines("retrain: {on: [manual], cooldown: 1h}")) == []


def test_wrong_type_names_the_path_and_line(tmp_path: Path) -> None:
    text = with_model_lines("gates:", "  - {metric: roc_auc, min: 0.8}", "  - {metric: roc_auc, vs_champion: abc}")
    with pytest.raises(
        ConfigError, match=r"^models\.churn\.gates\[1\]\.vs_champion: expected a number, got 'abc' \(line 9\)$"
    ):
        load_project(write(tmp_path, text))


def test_unknown_key_lists_known_keys_and_suggests(tmp_path: Path) -> None:
    text = with_model_lines("holdot: 0.3")
    with pytest.raises(
        ConfigError, match=r"models\.churn\.holdot: expected one of the known keys \(train, data, .*\)"
    ) as info:
        load_project(write(tmp_path, text))
    assert "did you mean 'holdout'?" in info.value.message
    assert "(line 7)" in info.value.message
    problems = validate_text(with_model_lines("colour: blue"))  # like nothing known: no misleading guess
    assert len(problems) == 1 and "did you mean" not in problems[0] and "known keys" in problems[0]
    assert "pydantic" not in info.value.message and "http" not in info.value.message


def test_bad_cron_names_the_field(tmp_path: Path) -> None:
    text = with_model_lines("retrain:", '  schedule: "61 3 * * 1"')
    with pytest.raises(
        ConfigError, match=r"^models\.churn\.retrain\.schedule: expected a cron expression .*got '61 3 \* \* 1'"
    ):
        load_project(write(tmp_path, text))
    assert validate_text(with_model_lines("retrain: {schedule: '0 3 * *'}"))[0].startswith(
        "models.churn.retrain.schedule:"
    )


def test_python_tag_is_refused_with_its_line(tmp_path: Path) -> None:
    text = MINIMAL + "    holdout: !!python/object/apply:os.system ['echo pwned']\n"
    with pytest.raises(
        ConfigError,
        match=r"^models\.churn\.holdout: expected plain YAML data, got the tag !!python/object/apply:os\.system .*\(line 7\)",
    ):
        load_project(write(tmp_path, text))


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    text = with_model_lines("holdout: 0.2", "holdout: 0.3")
    with pytest.raises(
        ConfigError,
        match=r"^models\.churn\.holdout: expected each key once, got 'holdout' again \(first at line 7; .*\(line 8\)$",
    ):
        load_project(write(tmp_path, text))


def test_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^stead\.yaml: expected valid YAML, got a syntax error: .*\(line 3, column \d+\)$"
    ):
        load_project(write(tmp_path, "project: x\nmodels:\n  churn: a: b\n"))


@pytest.mark.parametrize("metric", ["log_loss", "mae", "rmse", "mape"])
def test_lower_is_better_metric_with_min(metric: str) -> None:
    text = with_model_lines("gates:", f"  - {{metric: {metric}, min: 0.3}}")
    with pytest.raises(
        ConfigError, match=rf"^models\.churn\.gates\[0\]\.min: expected max for '{metric}', got min: .*lower-is-better"
    ):
        parse_project(text)
    assert validate_text(with_model_lines("gates:", f"  - {{metric: {metric}, max: 0.3}}")) == []


def test_gate_needs_exactly_one_bound_and_a_task_metric() -> None:
    problems = validate_text(with_model_lines("gates:", "  - {metric: roc_auc, min: 0.8, vs_champion: 0.01}"))
    assert problems == [
        "models.churn.gates[0]: expected exactly one of min, max or vs_champion, got min and vs_champion (line 8)"
    ]
    problems = validate_text(with_model_lines("task: regression", "gates:", "  - {metric: roc_auc, min: 0.8}"))
    assert problems == [
        "models.churn.gates[0].metric: expected a regression metric (mae, rmse, r2, mape), got 'roc_auc' (line 9)"
    ]
    problems = validate_text(with_model_lines("gates: [{metric: auc, min: 0.8}]"))
    assert len(problems) == 1 and "did you mean 'roc_auc'?" in problems[0]
    problems = validate_text(with_model_lines("gates: [{metric: r2, vs_champion: -0.1}]"))
    assert problems == ["models.churn.gates[0].vs_champion: expected a number >= 0.0, got -0.1 (line 7)"]


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    text = with_model_lines(
        "holdout: 1.5",
        "executor: {type: ray}",
        "deploy: {deployment: churn api, rollout: [50, 10]}",
        "monitor: {window: 0, drift: {threshold: 2}}",
        "retrain: {on: [drift, sometimes], cooldown: soon}",
    )
    path = write(tmp_path, text)
    problems = validate_file(path)
    assert problems == [
        "models.churn.holdout: expected a number < 1.0, got 1.5 (line 7)",
        "models.churn.executor.address: expected the Ray cluster address, e.g. 'ray://head:10001' or 'auto', got nothing (line 8)",
        "models.churn.deploy.deployment: expected a deployment name (a letter or digit, then letters, digits, '_', '.' or '-'; at most 128), got 'churn api' (line 9)",
        "models.churn.deploy.rollout: expected strictly increasing percent steps, e.g. [10, 50, 100], got [50, 10] (line 9)",
        "models.churn.monitor.drift.threshold: expected a number <= 1.0, got 2 (line 10)",
        "models.churn.monitor.window: expected a number of predictions >= 1 or a duration like '30m', '1h' or '2d' (units: ms, s, m, h, d, w), got 0 (line 10)",
        "models.churn.retrain.cooldown: expected a duration like '30m', '1h' or '2d' (units: ms, s, m, h, d, w), got 'soon' (line 11)",
        "models.churn.retrain.on[1]: expected 'drift', 'performance', 'new_data', 'schedule' or 'manual', got 'sometimes' (line 11)",
    ]  # fmt: skip
    assert all("\n" not in problem for problem in problems)
    with pytest.raises(
        ConfigError, match=r"^models\.churn\.holdout: .* \(and 7 more problems; run stead validate\)$"
    ) as info:
        load_project(path)
    assert info.value.details == problems
    assert info.value.hint


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("90s", 90.0, id="seconds"),
        pytest.param("30m", 1800.0, id="minutes"),
        pytest.param("1h", 3600.0, id="hours"),
        pytest.param("2d", 172800.0, id="days"),
        pytest.param("1w", 604800.0, id="weeks"),
        pytest.param("1h30m", 5400.0, id="combined"),
        pytest.param("1.5h", 5400.0, id="fraction"),
        pytest.param("250ms", 0.25, id="milliseconds"),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10", "h1", "-1h", "1 hour"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="expected a duration like '30m', '1h' or '2d'"):
        parse_duration(text)


def test_window_as_duration() -> None:
    spec = parse_project(with_model_lines("monitor: {window: 30m}")).model("churn")
    assert spec.monitor.window_rows is None
    assert spec.monitor.window_seconds == 1800.0


def test_notify_shell_string_is_refused() -> None:
    text = with_model_lines("monitor:", '  notify: [{command: "notify-send stead"}]')
    with pytest.raises(
        ConfigError,
        match=r"^models\.churn\.monitor\.notify\[0\]\.command: expected a list of arguments.*must be a list of arguments, never a shell string",
    ):
        parse_project(text)
    problems = validate_text(with_model_lines("monitor: {notify: [{webhook: 'https://x.example/h', command: [a]}]}"))
    assert problems == ["models.churn.monitor.notify[0]: expected exactly one of webhook or command, got both (line 7)"]


def test_entrypoints_and_executor() -> None:
    assert (
        "expected 'path.py:function' or 'module:function'"
        in validate_text(MINIMAL.replace("train.py:train", "train.py"))[0]
    )
    spec = parse_project(MINIMAL.replace("data/churn.parquet", "loaders.churn:load")).model("churn")
    assert spec.data_loader is not None and spec.data_loader.target == "loaders.churn" and not spec.data_loader.is_path
    spec = parse_project(with_model_lines("executor: {type: ray, address: 'ray://head:10001'}")).model("churn")
    assert spec.executor == ExecutorSpec(type="ray", address="ray://head:10001")
    assert validate_text(with_model_lines("executor: cloud")) == [
        "models.churn.executor: expected 'local' or {type: ray, address: 'ray://…'}, got 'cloud' (line 7)"
    ]


def test_rollout_must_end_at_100() -> None:
    assert validate_text(with_model_lines("deploy: {deployment: api, rollout: [10, 50]}")) == [
        "models.churn.deploy.rollout: expected the last step to be 100 (the new version serves everything), got [10, 50] (line 7)"
    ]
    assert validate_text(with_model_lines("deploy: {deployment: api, rollout: [0, 100]}")) == [
        "models.churn.deploy.rollout[0]: expected a percent in (0, 100], got 0 (line 7)"
    ]


def test_model_lookup_lists_known_models() -> None:
    project = parse_project(MINIMAL)
    with pytest.raises(ConfigError, match=r"no model 'chrun'; did you mean 'churn'\? \(known models: churn\)"):
        project.model("chrun")
    assert validate_text(MINIMAL.replace("  churn:", "  bad name:")) == [
        "models.bad name: expected a model name (a letter or digit, then letters, digits, '_', '.' or '-'; at most 128), got 'bad name' (line 3)"
    ]


def test_missing_file_says_run_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file") as info:
        load_project(tmp_path / "stead.yaml")
    assert info.value.hint is not None and "stead init" in info.value.hint


def test_empty_and_non_mapping_files(tmp_path: Path) -> None:
    assert validate_file(write(tmp_path, "")) == [
        "stead.yaml: expected a mapping with the keys project and models, got an empty file"
    ]
    assert validate_file(write(tmp_path, "- a\n")) == [
        "stead.yaml: expected a mapping of keys to values, got a list (line 1)"
    ]


def test_hostile_yaml_is_refused_cleanly() -> None:
    assert validate_text("project: &x [*x]\n") == ["project: expected a string, got a list (line 1)"]
    deep = "project: x\nmodels: " + "[" * 5000 + "]" * 5000 + "\n"
    assert validate_text(deep) == ["stead.yaml: expected YAML of a sensible depth, got nesting too deep to read"]


def test_after_alert_and_rollout_when_failing() -> None:
    spec = parse_project(
        with_model_lines(
            "deploy: {deployment: churn-api, rollout: [10, 50, 100], rollout_when_failing: [50, 100]}",
            "retrain: {on: [drift], after_alert: {min_labels: 150}}",
        )
    ).model("churn")
    assert spec.deploy is not None and spec.deploy.rollout_when_failing == [50, 100]
    assert spec.retrain.after_alert is not None
    assert (spec.retrain.after_alert.min_labels, spec.retrain.after_alert.data) == (150, "feedback")
    assert parse_project(MINIMAL).model("churn").retrain.after_alert is None
    problems = validate_text(
        with_model_lines(
            "deploy: {deployment: churn-api, rollout_when_failing: [50, 20]}",
            "retrain: {after_alert: {min_labels: 0, data: warehouse}}",
        )
    )
    assert problems == [
        "models.churn.deploy.rollout_when_failing: expected strictly increasing percent steps, e.g. [10, 50, 100], "
        "got [50, 20] (line 7)",
        "models.churn.retrain.after_alert.data: expected 'feedback' or 'source', got 'warehouse' (line 8)",
        "models.churn.retrain.after_alert.min_labels: expected a number >= 1, got 0 (line 8)",
    ]
