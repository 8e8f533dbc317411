"""The ``stead.yaml`` schema, its loader and the ``stead init`` template (layer: project; imports only stead.errors).

``load_project()`` reads ``stead.yaml`` into a typed ``Project``; every problem becomes one line of the form
``path: expected X, got Y (line N)``, e.g. ``models.churn.gates[1].vs_champion: expected a number, got 'abc'``.
``validate_file()`` returns all of those lines, ``load_project()`` raises ``ConfigError`` with the first one
(``details`` holds them all).

The YAML dialect is ``yaml.safe_load`` with three changes: only ``true``/``false`` are booleans (YAML 1.2), so
``on:``, ``yes`` and ``no`` stay strings; ``1e-3`` is a number; a key given twice in one mapping is an error.
Tags that build objects (``!!python/...``) are refused.

Examples
--------
>>> project = parse_project(INIT_TEMPLATE)
>>> spec = project.model("churn")
>>> spec.retrain.on, spec.retrain.cooldown_seconds
(['drift', 'performance', 'new_data'], 21600.0)
>>> parse_duration("1h30m")
5400.0
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError

from stead.errors import ConfigError

__all__ = [
    "CLASSIFICATION_METRICS",
    "INIT_TEMPLATE",
    "LOWER_IS_BETTER",
    "METRICS_BY_TASK",
    "REGRESSION_METRICS",
    "TRIGGERS",
    "AnalysisSpec",
    "BatchingSpec",
    "DeploySpec",
    "DriftSpec",
    "EntryPoint",
    "ExecutorSpec",
    "GateSpec",
    "ModelSpec",
    "MonitorSpec",
    "NotifySpec",
    "PerformanceSpec",
    "Problem",
    "Project",
    "RetrainSpec",
    "ServingSpec",
    "load_project",
    "parse_duration",
    "parse_project",
    "validate_file",
    "validate_text",
    "write_template",
]

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("mae", "rmse", "r2", "mape")
METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "classification": CLASSIFICATION_METRICS,
    "regression": REGRESSION_METRICS,
}
ALL_METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS
#: Metrics where a smaller value is better: their bounds are ``max``, never ``min``.
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse", "mape"})
#: What may start a retraining run (``retrain.on``).
TRIGGERS = ("drift", "performance", "new_data", "schedule", "manual")
DRIFT_METHODS = ("auto", "ks", "chi2", "psi", "wasserstein", "jensenshannon", "classifier")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_IDENT_RE = re.compile(rf"^{_IDENT}$")
_MODULE_RE = re.compile(rf"^{_IDENT}(?:\.{_IDENT})*$")
_URL_RE = re.compile(r"^https?://[^\s/?#]+[^\s]*$")
_DURATION_RE = re.compile(r"^(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w)\s*)+$")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_EXAMPLES = "a duration like '30m', '1h' or '2d' (units: ms, s, m, h, d, w)"
_FILE = "stead.yaml"


# --------------------------------------------------------------------------------------------------------------------
# Small helpers shared by the validators
# --------------------------------------------------------------------------------------------------------------------


def _got(value: Any) -> str:
    """How a value is shown after ``got``: YAML spelling for scalars, a kind for containers."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return repr(shown)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _fail(message: str, sub: tuple[str | int, ...] = ()) -> PydanticCustomError:
    """An error whose text we own; ``sub`` extends the location (a model validator can point at one field)."""
    return PydanticCustomError("stead", "{msg}", {"msg": message, "sub": sub})


def _fail_many(items: list[tuple[tuple[str | int, ...], str]]) -> PydanticCustomError:
    """Several problems found by one model validator, each with its own sub-location."""
    return PydanticCustomError("stead", "{msg}", {"msg": items[0][1], "items": items})


def _suggest(word: str, known: typing.Iterable[str]) -> str:
    """A close known word (a typo: ``holdot`` -> ``holdout``), else one that contains it (``auc`` ->
    ``roc_auc``), else nothing: a loose match (``colour`` -> ``holdout``) misleads more than it helps."""
    options = list(known)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.65)
    if not close and len(word) >= 3:
        close = [k for k in options if word.lower() in k.lower()][:1]
    return f"; did you mean {close[0]!r}?" if close else ""


def _duration_seconds(text: str) -> float | None:
    """Seconds in ``text`` ("90s", "30m", "1h30m", "2d"), or None when it is not a duration."""
    cleaned = text.strip().lower()
    if not cleaned or not _DURATION_RE.match(cleaned):
        return None
    return sum(float(amount) * _UNIT_SECONDS[unit] for amount, unit in _DURATION_PART_RE.findall(cleaned))


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``"90s"``, ``"30m"``, ``"1h"``, ``"2d"``, ``"1w"`` or ``"1h30m"``.

    Raises ``ConfigError`` for anything else.

    >>> parse_duration("30m"), parse_duration("2d"), parse_duration("250ms")
    (1800.0, 172800.0, 0.25)
    """
    seconds = _duration_seconds(text) if isinstance(text, str) else None
    if seconds is None:
        raise ConfigError(
            f"expected {_DURATION_EXAMPLES}, got {_got(text)}", hint="write e.g. 90s, 30m, 1h, 2d or 1h30m"
        )
    return seconds


# --------------------------------------------------------------------------------------------------------------------
# Annotated field types
# --------------------------------------------------------------------------------------------------------------------


def _name_check(kind: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not _NAME_RE.match(value):
            raise _fail(
                f"expected a {kind} name (a letter or digit, then letters, digits, '_', '.' or '-'; at most 128), "
                f"got {_got(value)}"
            )
        return value

    return check


def _non_empty(value: str) -> str:
    if not value.strip():
        raise _fail("expected a non-empty string, got ''")
    return value


@dataclass(frozen=True)
class EntryPoint:
    """A ``"path.py:function"`` (``is_path``) or ``"module:function"`` reference; nothing is imported here."""

    target: str
    function: str
    is_path: bool

    @classmethod
    def parse(cls, text: str) -> EntryPoint | None:
        """The reference in ``text``, or None when it is not one.

        >>> EntryPoint.parse("train.py:train")
        EntryPoint(target='train.py', function='train', is_path=True)
        >>> EntryPoint.parse("data/churn.parquet") is None
        True
        """
        target, sep, function = text.strip().rpartition(":")
        if not sep or not _IDENT_RE.match(function):
            return None
        if target.endswith(".py") and len(target) > 3:
            return cls(target, function, True)
        if _MODULE_RE.match(target):
            return cls(target, function, False)
        return None

    def __str__(self) -> str:
        return f"{self.target}:{self.function}"


def _train_ref(value: str) -> str:
    if EntryPoint.parse(value) is None:
        hint = ""
        if value.strip().endswith(".py"):
            hint = f" (add the function: '{value.strip()}:train')"
        raise _fail(f"expected 'path.py:function' or 'module:function', got {_got(value)}{hint}")
    return value.strip()


def _data_ref(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise _fail("expected a file path or a loader 'module:function', got ''")
    target, sep, function = stripped.rpartition(":")
    if sep and target.endswith(".py") and not _IDENT_RE.match(function):
        raise _fail(f"expected a loader 'path.py:function' with a function name, got {_got(value)}")
    return stripped


def _cron(value: str) -> str:
    expression = value.strip()
    fields_ok = expression.startswith("@") or len(expression.split()) == 5
    if not fields_ok or not croniter.is_valid(expression):
        raise _fail(
            "expected a cron expression with 5 fields (minute hour day-of-month month day-of-week), "
            f"e.g. '0 3 * * 1', got {_got(value)}"
        )
    return expression


def _window(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise _fail(f"expected a number of predictions >= 1 or {_DURATION_EXAMPLES}, got {value}")
        return value
    if isinstance(value, str):
        seconds = _duration_seconds(value)
        if seconds is None or seconds <= 0:
            raise _fail(f"expected a number of predictions >= 1 or {_DURATION_EXAMPLES}, got {_got(value)}")
        return value.strip()
    raise _fail(f"expected a number of predictions >= 1 or {_DURATION_EXAMPLES}, got {_got(value)}")


def _duration(value: Any) -> str:
    if isinstance(value, str) and _duration_seconds(value) is not None:
        return value.strip()
    raise _fail(f"expected {_DURATION_EXAMPLES}, got {_got(value)}")


def _rollout(steps: list[int]) -> list[int]:
    shown = "[" + ", ".join(str(step) for step in steps) + "]"
    if not steps:
        raise _fail("expected percent steps ending at 100, e.g. [10, 50, 100], got []")
    for index, step in enumerate(steps):
        if not 0 < step <= 100:
            raise _fail(f"expected a percent in (0, 100], got {step}", (index,))
    if any(later <= earlier for earlier, later in itertools.pairwise(steps)):
        raise _fail(f"expected strictly increasing percent steps, e.g. [10, 50, 100], got {shown}")
    if steps[-1] != 100:
        raise _fail(f"expected the last step to be 100 (the new version serves everything), got {shown}")
    return steps


def _command(value: Any) -> Any:
    if isinstance(value, str):
        raise _fail(
            f"expected a list of arguments such as ['notify-send', 'stead'], got the string {_got(value)}: "
            "a command must be a list of arguments, never a shell string"
        )
    return value


def _executor(value: Any) -> Any:
    if isinstance(value, str):
        if value == "local":
            return {"type": "local"}
        if value == "ray":
            raise _fail("expected {type: ray, address: 'ray://…'} (a Ray executor needs an address), got 'ray'")
        raise _fail(f"expected 'local' or {{type: ray, address: 'ray://…'}}, got {_got(value)}")
    if not isinstance(value, dict | ExecutorSpec):
        raise _fail(f"expected 'local' or {{type: ray, address: 'ray://…'}}, got {_got(value)}")
    return value


ModelName = Annotated[str, AfterValidator(_name_check("model"))]
DeploymentName = Annotated[str, AfterValidator(_name_check("deployment"))]
ProjectName = Annotated[str, AfterValidator(_name_check("project"))]
TrainRef = Annotated[str, AfterValidator(_train_ref)]
DataRef = Annotated[str, AfterValidator(_data_ref)]
Cron = Annotated[str, AfterValidator(_cron)]
Window = Annotated[int | str, PlainValidator(_window)]
Duration = Annotated[str, PlainValidator(_duration)]
Rollout = Annotated[list[int], AfterValidator(_rollout)]
Trigger = Literal["drift", "performance", "new_data", "schedule", "manual"]


# --------------------------------------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------------------------------------


class _Spec(BaseModel):
    """Base of every section: unknown keys are errors, no silent coercion, immutable once loaded."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _bound_problems(metric: str, low: float | None, high: float | None) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems with a metric and its ``min``/``max`` bound (shared by gates and monitor.performance)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if metric not in ALL_METRICS:
        known = "; ".join(f"{task}: {', '.join(names)}" for task, names in METRICS_BY_TASK.items())
        problems.append(
            (("metric",), f"expected a metric name ({known}), got {_got(metric)}{_suggest(metric, ALL_METRICS)}")
        )
    elif low is not None and metric in LOWER_IS_BETTER:
        problems.append(
            (("min",), f"expected max for {metric!r}, got min: {metric} is lower-is-better, so bound it with max")
        )
    elif high is not None and metric not in LOWER_IS_BETTER:
        problems.append(
            (("max",), f"expected min for {metric!r}, got max: {metric} is higher-is-better, so bound it with min")
        )
    return problems


class GateSpec(_Spec):
    """One gate: ``{metric, min}``, ``{metric, max}`` or ``{metric, vs_champion}`` (exactly one bound)."""

    metric: str
    min: float | None = None
    max: float | None = None
    vs_champion: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _check(self) -> GateSpec:
        given = [key for key in ("min", "max", "vs_champion") if getattr(self, key) is not None]
        if len(given) != 1:
            got = "none of them" if not given else " and ".join(given)
            raise _fail(f"expected exactly one of min, max or vs_champion, got {got}")
        problems = _bound_problems(self.metric, self.min, self.max)
        if problems:
            raise _fail_many(problems)
        return self

    @property
    def lower_is_better(self) -> bool:
        return self.metric in LOWER_IS_BETTER


class ExecutorSpec(_Spec):
    """Where training runs: ``local`` (the default) or ``{type: ray, address: "ray://…"}``."""

    type: Literal["local", "ray"] = "local"
    address: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ExecutorSpec:
        if self.type == "ray" and not (self.address or "").strip():
            raise _fail(
                "expected the Ray cluster address, e.g. 'ray://head:10001' or 'auto', got nothing", ("address",)
            )
        if self.type == "local" and self.address is not None:
            raise _fail(f"expected no address for the local executor, got {_got(self.address)}", ("address",))
        return self


class AnalysisSpec(_Spec):
    """Limits a canary must stay within at each rollout step (``max_p99_ms``/``max_prediction_drift``: off if None)."""

    min_requests: int = Field(default=100, ge=0)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_p99_ms: float | None = Field(default=None, ge=0)
    max_metric_drop: float = Field(default=0.02, ge=0)
    max_prediction_drift: float | None = Field(default=None, ge=0, le=1)


class DeploySpec(_Spec):
    """The rollout policy for approved versions."""

    deployment: DeploymentName
    rollout: Rollout = Field(default_factory=lambda: [100])
    # The steps instead of ``rollout`` when the champion is failing its own floor as the rollout starts (an
    # open performance alert, realized or estimated, on the deployment, or an absolute gate it misses on the
    # candidate's holdout): each step then costs the traffic a failing primary keeps. None: always ``rollout``.
    rollout_when_failing: Rollout | None = None
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)


class DriftSpec(_Spec):
    """Dataset drift alerting: an alert when at least ``threshold`` of the features drifted."""

    threshold: float = Field(default=0.3, gt=0, le=1)
    method: Literal["auto", "ks", "chi2", "psi", "wasserstein", "jensenshannon", "classifier"] = "auto"


class PerformanceSpec(_Spec):
    """Performance alerting on feedback-labelled predictions: exactly one of ``min``/``max``."""

    metric: str
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _check(self) -> PerformanceSpec:
        if (self.min is None) == (self.max is None):
            raise _fail(f"expected exactly one of min or max, got {'both' if self.min is not None else 'neither'}")
        problems = _bound_problems(self.metric, self.min, self.max)
        if problems:
            raise _fail_many(problems)
        return self


class NotifySpec(_Spec):
    """One notifier: ``{webhook: "https://…"}`` or ``{command: [argv…]}``."""

    webhook: str | None = None
    command: Annotated[list[str] | None, BeforeValidator(_command)] = None

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not _URL_RE.match(value):
            raise _fail(f"expected an http:// or https:// URL, got {_got(value)}")
        return value

    @field_validator("command")
    @classmethod
    def _argv(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or not value[0].strip()):
            raise _fail("expected a program and its arguments, e.g. ['notify-send', 'stead'], got an empty program")
        return value

    @model_validator(mode="after")
    def _one(self) -> NotifySpec:
        if (self.webhook is None) == (self.command is None):
            got = "both" if self.webhook is not None else "neither"
            raise _fail(f"expected exactly one of webhook or command, got {got}")
        return self


class MonitorSpec(_Spec):
    """What the controller watches on the model's deployment."""

    window: Window = 1000
    drift: DriftSpec = Field(default_factory=DriftSpec)
    performance: PerformanceSpec | None = None
    notify: list[NotifySpec] = Field(default_factory=list)

    @property
    def window_rows(self) -> int | None:
        """The window as a number of predictions, or None when it is a duration."""
        return self.window if isinstance(self.window, int) else None

    @property
    def window_seconds(self) -> float | None:
        """The window as seconds, or None when it is a number of predictions."""
        return parse_duration(self.window) if isinstance(self.window, str) else None


class BatchingSpec(_Spec):
    """Adaptive batching: up to ``max_batch`` requests, waiting at most ``max_wait_ms`` for more."""

    max_batch: int = Field(default=32, ge=1)
    max_wait_ms: float = Field(default=5.0, ge=0)


class ServingSpec(_Spec):
    """How the server serves this model (``batching`` None: one request per call)."""

    batching: BatchingSpec | None = None
    body_limit_mb: float = Field(default=10.0, gt=0)


def _manual_only() -> list[Trigger]:
    return ["manual"]


class AfterAlertSpec(_Spec):
    """Fresh data for a retrain that a drift or performance alert fires.

    The retrain waits until the deployment has logged ``min_labels`` labelled predictions served after the
    alert opened (labels come late): a model trained at once would learn the world that just ended. With
    ``data: feedback`` it then trains and is gated on those predictions (their logged inputs, their labels);
    with ``data: source`` on the model's ``data`` as usual, for a source that holds the new rows by then.
    """

    min_labels: int = Field(default=200, ge=1)
    data: Literal["feedback", "source"] = "feedback"


class RetrainSpec(_Spec):
    """When to retrain: a cron ``schedule``, the triggers in ``on``, at most once per ``cooldown``."""

    schedule: Cron | None = None
    on: list[Trigger] = Field(default_factory=_manual_only)
    cooldown: Duration = "1h"
    after_alert: AfterAlertSpec | None = None

    @model_validator(mode="after")
    def _check(self) -> RetrainSpec:
        if "schedule" in self.on and self.schedule is None:
            raise _fail("expected retrain.schedule (a cron expression) when 'schedule' is a trigger, got none", ("on",))
        return self

    @property
    def cooldown_seconds(self) -> float:
        return parse_duration(self.cooldown)

    @property
    def triggers(self) -> frozenset[str]:
        """Every active trigger: ``on``, plus ``schedule`` when a schedule is set; ``manual`` always works."""
        active = set(self.on) | {"manual"}
        if self.schedule is not None:
            active.add("schedule")
        return frozenset(active)


class ModelSpec(_Spec):
    """One entry of ``models:``: how to train, gate, deploy, monitor, serve and retrain a model."""

    train: TrainRef
    data: DataRef
    target: Annotated[str, AfterValidator(_non_empty)]
    task: Literal["classification", "regression"] | None = None
    holdout: float = Field(default=0.2, gt=0, lt=1)
    executor: Annotated[ExecutorSpec, BeforeValidator(_executor)] = Field(default_factory=ExecutorSpec)
    gates: list[GateSpec] = Field(default_factory=list)
    deploy: DeploySpec | None = None
    monitor: MonitorSpec = Field(default_factory=MonitorSpec)
    serving: ServingSpec = Field(default_factory=ServingSpec)
    retrain: RetrainSpec = Field(default_factory=RetrainSpec)

    @model_validator(mode="after")
    def _metrics_fit_the_task(self) -> ModelSpec:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        task: str | None = self.task
        for index, gate in enumerate(self.gates):
            gate_task = _task_of(gate.metric)
            if task is None:
                task = gate_task  # the first gate decides; the others must agree with it
                continue
            if gate_task != task:
                names = ", ".join(METRICS_BY_TASK[task])
                problems.append(
                    (("gates", index, "metric"), f"expected a {task} metric ({names}), got {_got(gate.metric)}")
                )
        performance = self.monitor.performance
        if task is not None and performance is not None and _task_of(performance.metric) != task:
            names = ", ".join(METRICS_BY_TASK[task])
            problems.append(
                (
                    ("monitor", "performance", "metric"),
                    f"expected a {task} metric ({names}), got {_got(performance.metric)}",
                )
            )
        if problems:
            raise _fail_many(problems)
        return self

    @property
    def train_entrypoint(self) -> EntryPoint:
        """``train`` split into its file or module and function."""
        entry = EntryPoint.parse(self.train)
        assert entry is not None  # validated on load
        return entry

    @property
    def data_loader(self) -> EntryPoint | None:
        """``data`` as a loader ``module:function``/``path.py:function``, or None when it is a file path or URL."""
        return EntryPoint.parse(self.data)


def _task_of(metric: str) -> str:
    return "classification" if metric in CLASSIFICATION_METRICS else "regression"


class Project(_Spec):
    """The whole ``stead.yaml``."""

    project: ProjectName
    models: dict[ModelName, ModelSpec] = Field(default_factory=dict)

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_model_per_deployment(self) -> Project:
        owners: dict[str, str] = {}
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for name, spec in self.models.items():
            if spec.deploy is None:
                continue
            other = owners.setdefault(spec.deploy.deployment, name)
            if other != name:
                problems.append(
                    (
                        ("models", name, "deploy", "deployment"),
                        f"expected a deployment no other model uses, got {spec.deploy.deployment!r} "
                        f"(models.{other} deploys there already)",
                    )
                )
        if problems:
            raise _fail_many(problems)
        return self

    @property
    def source(self) -> Path | None:
        """The file this project was loaded from (None when parsed from text)."""
        return self._source

    @property
    def root(self) -> Path:
        """The folder relative paths (``train``, ``data``) are resolved against."""
        return self._source.parent if self._source is not None else Path.cwd()

    def resolve(self, relative: str) -> Path:
        """A path from ``stead.yaml`` made absolute against the project's folder."""
        path = Path(relative)
        return path if path.is_absolute() else self.root / path

    def model(self, name: str) -> ModelSpec:
        """The model called ``name``; ``ConfigError`` lists the known ones when there is none."""
        try:
            return self.models[name]
        except KeyError:
            pass
        known = ", ".join(sorted(self.models)) or "none"
        file = self._source.name if self._source is not None else _FILE
        raise ConfigError(
            f"{file} has no model {name!r}{_suggest(name, self.models)} (known models: {known})",
            hint=f"add it under models: in {file}, or run one of: {known}",
            details={"known": sorted(self.models)},
        )


# --------------------------------------------------------------------------------------------------------------------
# YAML: a safe loader that keeps `on` a string and remembers lines
# --------------------------------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` with YAML 1.2 booleans (only true/false) and floats with a bare exponent (``1e-3``)."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)

_SAFE_TAGS = frozenset(tag for tag in _Loader.yaml_constructors if tag is not None)
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Problem:
    """One problem in ``stead.yaml``; ``str()`` gives the one-line form ``path: expected X, got Y (line N)``."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = ""
        if self.line is not None:
            where = f" (line {self.line}, column {self.column})" if self.column is not None else f" (line {self.line})"
        return f"{self.path}: {self.message}{where}"


def _format_path(loc: tuple[str | int, ...], file: str) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or file


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


def _walk_nodes(root: yaml.Node) -> Iterator[tuple[tuple[str | int, ...], yaml.Node, bool]]:
    """Every node with its path and whether it is a mapping key; a node reached twice (an alias) is visited once."""
    seen: set[int] = set()
    stack: list[tuple[tuple[str | int, ...], yaml.Node, bool]] = [((), root, False)]
    while stack:
        path, node, is_key = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield path, node, is_key
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in reversed(node.value):
                label = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                stack.append(((*path, label), value_node, False))
                stack.append(((*path, label), key_node, True))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in reversed(list(enumerate(node.value))):
                stack.append(((*path, index), item, False))


def _node_problems(root: yaml.Node, file: str) -> list[Problem]:
    """Refused tags and duplicate keys, found on the composed tree so that each has its path and line."""
    problems: list[Problem] = []
    for path, node, is_key in _walk_nodes(root):
        if node.tag not in _SAFE_TAGS and not (is_key and node.tag == _MERGE_TAG):
            problems.append(
                Problem(
                    _format_path(path, file),
                    f"expected plain YAML data, got the tag {_short_tag(node.tag)} "
                    "(tags that build objects are refused; remove it)",
                    node.start_mark.line + 1,
                )
            )
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue
                line = key_node.start_mark.line + 1
                identity = (key_node.tag, key_node.value)
                if identity not in first:
                    first[identity] = line
                    continue
                problems.append(
                    Problem(
                        _format_path((*path, key_node.value), file),
                        f"expected each key once, got {key_node.value!r} again (first at line {first[identity]}; "
                        "keep one of them)",
                        line,
                    )
                )
    return problems


def _line_of(root: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    """The line of the deepest node of ``loc`` present in the file (a key's own line for mapping entries)."""
    if root is None:
        return None
    node: yaml.Node = root
    line = root.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _parse_yaml(text: str, file: str) -> tuple[Any, yaml.Node | None, list[Problem]]:
    """The data and composed tree of ``text``, or the problems that stop it being read."""
    loader = _Loader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "unreadable YAML"
            line = mark.line + 1 if mark is not None else None
            column = mark.column + 1 if mark is not None else None
            return None, None, [Problem(file, f"expected valid YAML, got a syntax error: {problem}", line, column)]
        except yaml.YAMLError as exc:
            return None, None, [Problem(file, f"expected valid YAML, got a syntax error: {exc}")]
        except RecursionError:
            return None, None, [Problem(file, "expected YAML of a sensible depth, got nesting too deep to read")]
        if root is None:
            return None, None, []
        problems = _node_problems(root, file)
        if problems:
            return None, root, problems
        try:
            data = loader.construct_document(root)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            return None, root, [Problem(file, f"expected plain YAML data, got {exc.problem or exc.context}", line)]
        return data, root, []
    finally:
        loader.dispose()


# --------------------------------------------------------------------------------------------------------------------
# pydantic errors -> one line each
# --------------------------------------------------------------------------------------------------------------------

_EXPECTED_BY_TYPE = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list, e.g. [a, b]",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
}


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin is Union or origin is types.UnionType:
            args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(args) == 1:
                annotation = args[0]
                continue
        return annotation


def _section_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The schema class that validates the mapping at ``loc`` (to list its known keys)."""
    annotation: Any = Project
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return None
            annotation = field.annotation
            continue
        origin = typing.get_origin(annotation)
        if origin is list:
            annotation = typing.get_args(annotation)[0]
        elif origin is dict:
            annotation = typing.get_args(annotation)[1]
        else:
            return None
    annotation = _unwrap(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _describe(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    loc = tuple(error["loc"])
    if kind == "missing":
        return "expected a value, got nothing (this key is required)"
    if kind == "extra_forbidden":
        section = _section_at(loc[:-1])
        known = list(section.model_fields) if section is not None else []
        key = str(loc[-1])
        listed = f"one of the known keys ({', '.join(known)})" if known else "a known key"
        return f"expected {listed}, got unknown key {key!r}{_suggest(key, known)}"
    if kind == "literal_error":
        return f"expected {ctx.get('expected', 'one of the allowed values')}, got {_got(value)}"
    if kind in _EXPECTED_BY_TYPE:
        if value is None:
            return f"expected {_EXPECTED_BY_TYPE[kind]}, got an empty value (write a value after the colon)"
        return f"expected {_EXPECTED_BY_TYPE[kind]}, got {_got(value)}"
    bounds = {
        "greater_than": (">", "gt"),
        "greater_than_equal": (">=", "ge"),
        "less_than": ("<", "lt"),
        "less_than_equal": ("<=", "le"),
    }
    if kind in bounds:
        sign, key = bounds[kind]
        return f"expected a number {sign} {ctx.get(key)}, got {_got(value)}"
    if kind in ("too_short", "too_long"):
        return f"expected {ctx.get('field_type', 'value').lower()} of the right length, got {_got(value)}"
    message = str(error.get("msg", "is not valid"))
    message = re.sub(r"^(Value error, |Assertion failed, )", "", message)
    message = re.sub(r"^Input should be ", "expected ", message)
    if not message.startswith("expected"):
        message = f"expected a valid value ({message[:1].lower()}{message[1:]})"
    return f"{message}, got {_got(value)}"


def _translate(exc: PydanticValidationError, root: yaml.Node | None, file: str) -> list[Problem]:
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        loc = tuple(part for part in error["loc"] if part != "[key]")
        if error["type"] == "stead":
            ctx = error.get("ctx") or {}
            items = ctx.get("items") or [(ctx.get("sub", ()), ctx.get("msg", ""))]
            for sub, message in items:
                where = (*loc, *sub)
                problems.append(Problem(_format_path(where, file), str(message), _line_of(root, where)))
            continue
        message = _describe(error)
        if not loc and error.get("input") is None:
            message = "expected a mapping with the keys project and models, got an empty file"
        problems.append(Problem(_format_path(loc, file), message, _line_of(root, loc)))
    return problems


def _check_text(text: str, file: str = _FILE) -> tuple[Project | None, list[Problem]]:
    data, root, problems = _parse_yaml(text, file)
    if problems:
        return None, sorted(problems, key=lambda problem: (problem.line or math.inf, problem.path))
    try:
        return Project.model_validate(data), []
    except PydanticValidationError as exc:
        problems = _translate(exc, root, file)
    return None, sorted(problems, key=lambda problem: (problem.line or math.inf, problem.path))


def _raise(problems: list[Problem], file: str) -> typing.NoReturn:
    lines = [str(problem) for problem in problems]
    message = lines[0]
    if len(lines) > 1:
        more = len(lines) - 1
        message += f" (and {more} more problem{'s' if more > 1 else ''}; run stead validate)"
    raise ConfigError(
        message, hint=f"fix {file} at the line shown; `stead validate` lists every problem", details=lines
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file", hint="run stead init to write a commented stead.yaml") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: expected a file, got a folder", hint="point at the stead.yaml file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: expected UTF-8 text, got an undecodable byte at offset {exc.start}",
            hint="save the file as UTF-8",
        ) from None


# --------------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------------


def parse_project(text: str, file: str = _FILE) -> Project:
    """A ``Project`` from YAML text; raises ``ConfigError`` like ``load_project``."""
    project, problems = _check_text(text, file)
    if project is None:
        _raise(problems, file)
    return project


def validate_text(text: str, file: str = _FILE) -> list[str]:
    """Every problem in YAML text, one line each (empty when valid)."""
    return [str(problem) for problem in _check_text(text, file)[1]]


def load_project(path: str | Path = _FILE) -> Project:
    """Read and validate ``stead.yaml``.

    Raises ``ConfigError``: its message is the first problem (plus how many more), its ``details`` every
    problem line; a missing file says to run ``stead init``.
    """
    file = Path(path)
    project, problems = _check_text(_read(file), file.name)
    if project is None:
        _raise(problems, file.name)
    project._source = file.resolve()
    return project


def validate_file(path: str | Path = _FILE) -> list[str]:
    """Every problem in the file, one line each (``path: expected X, got Y (line N)``); empty when valid."""
    file = Path(path)
    return [str(problem) for problem in _check_text(_read(file), file.name)[1]]


def write_template(folder: Path) -> bool:
    """Write ``INIT_TEMPLATE`` to ``folder/stead.yaml``; False (nothing changed) when the file exists."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / _FILE
    if target.exists() or target.is_symlink():
        return False
    try:
        with target.open("x", encoding="utf-8") as handle:
            handle.write(INIT_TEMPLATE)
    except FileExistsError:
        return False
    return True


INIT_TEMPLATE = """\
# stead.yaml: what stead trains, checks, deploys, watches and retrains.
# `stead validate` checks this file and names every problem with its field path.
# Names (project, models, deployments): a letter or digit, then letters, digits, _ . - (at most 128).

project: churn                       # the project's name

models:                              # one entry per model; the key is the registered model's name
  churn:                           # run it with `stead run churn`
    train: train.py:train            # a function (ctx) -> fitted model, as "path.py:function" or "module:function";
                                     # ctx.X, ctx.y, ctx.data, ctx.params, ctx.seed and ctx.run are its inputs
    data: data/churn.parquet         # a file (Parquet or CSV) or a loader "module:function" returning a DataFrame
    target: churned                  # the column to predict
    task: classification             # or regression; inferred from the target when left out
    holdout: 0.2                     # share of rows kept out for evaluation and gates (between 0 and 1)
    executor: local                  # or {type: ray, address: "ray://head:10001"} (needs pip install 'stead[ray]')
    gates:                           # all must pass before a version may serve; each takes one of min, max, vs_champion
      - {metric: roc_auc, min: 0.80}           # lower-is-better metrics (log_loss, mae, rmse, mape) take max:
      - {metric: roc_auc, vs_champion: 0.005}  # on the same holdout, no worse than the champion by more than this
      # metrics: accuracy, precision, recall, f1, roc_auc, log_loss (classification); mae, rmse, r2, mape (regression)
    deploy:                          # leave out to register approved versions without serving them
      deployment: churn-api          # served at /v1/deployments/churn-api/predict
      rollout: [10, 50, 100]         # canary steps in percent of traffic, strictly increasing, ending at 100
      rollout_when_failing: [50, 100]  # the steps when the champion fails its own floor (an open performance
                                     # alert, or a gate bound it misses on the new holdout); off when left out
      analysis:                      # a canary must stay within these limits AND not be significantly worse
                                     # than the primary; otherwise it is rolled back
        min_requests: 500            # requests a step must see before it is judged
        max_error_rate: 0.01         # share of failed requests
        max_p99_ms: 50               # 99th-percentile latency in milliseconds (off when left out)
        max_metric_drop: 0.02        # how far the canary's metric may fall below the primary's, on labelled requests
        max_prediction_drift: 0.1    # Jensen-Shannon distance (0-1) between canary and primary predictions;
                                     # off when left out
    monitor:                         # what the controller watches once the model serves
      window: 1000                   # predictions per window, or a duration like "1h"
      drift: {threshold: 0.3}        # share of drifted features that raises an alert (0-1]
      performance: {metric: accuracy, min: 0.85}   # alert when the metric on labelled predictions crosses this bound
      notify: []                     # where alerts go besides `stead alerts list`, e.g.:
      #  - {webhook: "https://hooks.example/ml"}   # an HTTP(S) POST of the alert as JSON
      #  - {command: ["notify-send", "stead"]}     # a program and its arguments: a list, never a shell string
    serving:                         # how `stead serve` serves this model
      batching: {max_batch: 64, max_wait_ms: 2}    # adaptive batching; omit to serve one request per call
      body_limit_mb: 10              # largest request body accepted, in megabytes
    retrain:                         # when the controller retrains (`stead run churn` always works)
      schedule: "0 3 * * 1"          # cron (minute hour day-of-month month day-of-week): Mondays at 03:00
      on: [drift, performance, new_data]   # triggers besides the schedule: drift, performance, new_data, manual
      cooldown: 6h                   # at least this long between two retraining runs (s, m, h, d, w)
      after_alert:                   # a drift or performance alert's retrain waits for data from after it:
        min_labels: 200              #   labelled predictions served since the alert opened (off when left out)
        data: feedback               #   then trains on them (feedback), or on the model's data: (source)
"""
