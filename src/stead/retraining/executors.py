"""Where a training pipeline runs: the ``local`` and ``ray`` executors of ``stead.yaml`` (layer: retraining).

A model's ``executor`` picks one (``local`` by default):

- ``local``: a process of its own on this machine. The controller starts it from a warm fork server
  (:class:`WarmStarter`: ``multiprocessing``'s ``forkserver``, whose interpreter imported stead's pipeline and
  the usual training libraries once), so a pipeline starts in milliseconds instead of the seconds those imports
  take, and still cannot take the controller or the server down with it. ``stead run`` itself runs the
  pipeline in its own process; :class:`LocalExecutor` runs ``python -m stead run MODEL`` in a subprocess.
- ``{type: ray, address: …}``: the pipeline runs as one Ray task (``ray.init(address=…)``, then a remote function
  that opens the same store and calls ``run_pipeline``). The store must be reachable from the Ray workers: a
  ``postgresql://`` store with ``STEAD_ARTIFACTS`` on S3 (or a shared folder), or, on a one-machine Ray runtime,
  the embedded folder. The workers need stead and the project's dependencies installed (the image of
  ``stead build --for train``); for a ``ray://`` address the project folder is shipped as the task's
  ``working_dir``, otherwise the workers read it at the same path.

Both return an :class:`Outcome`; the controller records it, ``stead run`` prints it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stead.errors import ConfigError, MissingDependency, SteadError

if TYPE_CHECKING:
    from stead.project import ExecutorSpec
    from stead.retraining.pipeline import PipelineResult
    from stead.settings import Settings

__all__ = ["LocalExecutor", "Outcome", "PipelineProcess", "RayExecutor", "WarmStarter", "executor_for"]

# What the fork server imports once; a module that is not installed is skipped.
PRELOAD = (
    "stead.retraining.pipeline",
    "stead.store.sql",  # SQLAlchemy: a quarter of a second
    "stead.project",
    "stead.registry",
    "stead.tracking",
    "stead.datasets",
    "stead.deployments",
    "stead.environment",
    "stead.flavors",
    "stead.monitoring.performance",
    "pandas",
    "pyarrow.parquet",
    "sklearn.base",
    "sklearn.metrics",
    "skops.io",
)


@dataclass
class Outcome:
    """What a pipeline launched by an executor ended with; ``result`` is ``PipelineResult.to_dict()`` when it ran."""

    ok: bool
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    where: str = "local"

    @property
    def approved(self) -> bool:
        return bool(self.result.get("approved"))

    @property
    def version(self) -> int | None:
        value = self.result.get("version")
        return int(value) if value is not None else None


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ, STEAD_URI=settings.uri)
    if settings.artifacts:
        env["STEAD_ARTIFACTS"] = settings.artifacts
    if settings.token:
        env["STEAD_TOKEN"] = settings.token
    return env


class LocalExecutor:
    """``python -m stead run MODEL`` in a subprocess on this machine."""

    name = "local"

    def launch(
        self,
        settings: Settings,
        project_file: Path,
        model: str,
        *,
        pipeline_id: str | None = None,
        trigger: str = "manual",
        reason: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Outcome:
        command = [sys.executable, "-m", "stead", "run", model, "--file", str(project_file), "--json"]
        if reason:
            command += ["--reason", reason]
        if pipeline_id:
            command += ["--pipeline-id", pipeline_id]
        for key, value in (params or {}).items():
            command += ["--param", f"{key}={value}"]
        done = subprocess.run(
            command, env=_child_env(settings), capture_output=True, text=True, cwd=project_file.parent
        )
        if done.returncode in (0, 3):
            try:
                return Outcome(True, json.loads(done.stdout))
            except ValueError:
                return Outcome(True)
        last = (done.stderr.strip().splitlines() or ["(no output)"])[0]
        return Outcome(False, error=last)


def _run_here(
    settings: Settings,
    project_file: Path,
    model: str,
    pipeline_id: str | None,
    trigger: str,
    reason: str | None,
    params: Mapping[str, Any],
) -> PipelineResult:
    """Open the store, run the pipeline in this process, close the store."""
    from stead.project import load_project
    from stead.retraining.pipeline import run_pipeline
    from stead.store import open_store

    store = open_store(settings)
    try:
        return run_pipeline(
            store,
            load_project(project_file),
            model,
            params=params,
            reason=reason,
            trigger=trigger,
            pipeline_id=pipeline_id,
        )
    finally:
        store.close()


def _pipeline_main(
    settings: Settings, project_file: str, model: str, pipeline_id: str, trigger: str, reason: str, out: str, err: str
) -> None:
    """A warm-started pipeline process: run the pipeline, write its result as JSON to ``out``, exit 0, 3
    (rejected) or 1 (failed, the traceback in ``err``)."""
    import traceback

    with open(out, "ab", buffering=0) as stdout, open(err, "ab", buffering=0) as stderr:
        os.dup2(stdout.fileno(), 1)
        os.dup2(stderr.fileno(), 2)
    path = Path(project_file)
    os.chdir(path.parent)
    os.environ.update({k: v for k, v in _child_env(settings).items() if k.startswith("STEAD_")})
    # What the run records as its command line: what re-runs this pipeline by hand (stead reproduce).
    sys.argv = ["stead", "run", model, "--file", str(path), "--reason", reason]
    code = 1
    try:
        result = _run_here(settings, path, model, pipeline_id, trigger, reason, {})
        sys.stdout.write(json.dumps(result.to_dict(), default=str))
        code = result.exit_code
    except SteadError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
    except BaseException as exc:  # the first line says what failed, the traceback follows
        sys.stderr.write(f"error: {type(exc).__name__}: {exc}\n")
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


_MAIN_LOCK = threading.Lock()


class PipelineProcess:
    """A started pipeline process: ``poll()`` (None while it runs, else the exit code), ``wait()``, and the
    files that hold its result (``stdout``, JSON) and its errors (``stderr``)."""

    def __init__(self, process: Any, stdout: Path, stderr: Path) -> None:
        self.process = process
        self.stdout = stdout
        self.stderr = stderr

    @property
    def returncode(self) -> int | None:
        code = self.process.exitcode
        return None if code is None else int(code)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        self.process.join(timeout)
        return self.returncode

    def read(self) -> tuple[str, str]:
        """The result and the errors it wrote, then both files are removed."""
        texts = []
        for path in (self.stdout, self.stderr):
            try:
                texts.append(path.read_text(errors="replace"))
                path.unlink()
            except FileNotFoundError:
                texts.append("")
        return texts[0], texts[1]


class WarmStarter:
    """Starts each pipeline in a process of its own, forked from a warm server; see the module docstring.

    The fork server is ``multiprocessing``'s ``forkserver``: a fresh interpreter (never a fork of this
    multi-threaded one) that imports :data:`PRELOAD` once, then forks a clean child per pipeline. ``warm()``
    starts it in the background, so its imports overlap with the controller's first ticks.
    """

    def __init__(self, folder: Path) -> None:
        import multiprocessing

        self.folder = folder
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(list(PRELOAD))

    def warm(self) -> None:
        from multiprocessing import forkserver

        threading.Thread(target=forkserver.ensure_running, name="stead-forkserver", daemon=True).start()

    def start(
        self, settings: Settings, project_file: Path, model: str, pipeline_id: str, trigger: str, reason: str
    ) -> PipelineProcess:
        self.folder.mkdir(parents=True, exist_ok=True)
        out, err = self.folder / f"{pipeline_id}.out", self.folder / f"{pipeline_id}.err"
        args = (settings, str(project_file.resolve()), model, pipeline_id, trigger, reason, str(out), str(err))
        process = self.context.Process(target=_pipeline_main, args=args, name=f"stead-pipeline-{pipeline_id[:12]}")
        # multiprocessing would have the child re-import this process' main script (as ``__mp_main__``), which
        # re-runs whatever a script without an ``if __name__ == "__main__":`` guard does at import (a script
        # that starts a controller, say). The child needs nothing from it: hide it while the start is prepared.
        with _MAIN_LOCK:
            main = sys.modules["__main__"]
            sys.modules["__main__"] = types.ModuleType("__main__")
            try:
                process.start()
            finally:
                sys.modules["__main__"] = main
        return PipelineProcess(process, out, err)


def _run_remote(
    settings: Settings,
    project_file: str,
    model: str,
    pipeline_id: str | None,
    trigger: str,
    reason: str | None,
    params: dict[str, Any],
) -> dict[str, Any]:
    """The Ray task: open the store, run the pipeline, return its result (runs in a Ray worker)."""
    import socket

    path = Path(project_file)
    if not path.is_absolute():
        path = Path.cwd() / path  # a ray:// task runs in its shipped working_dir
    result = _run_here(settings, path, model, pipeline_id, trigger, reason, params)
    out = result.to_dict()
    out["executor"] = {"type": "ray", "host": socket.gethostname(), "pid": os.getpid()}
    return out


class RayExecutor:
    """The pipeline as one Ray task on the cluster at ``address``."""

    name = "ray"

    def __init__(self, address: str, num_cpus: float = 1.0) -> None:
        self.address = address
        self.num_cpus = num_cpus

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError:
            raise MissingDependency(
                "the ray executor needs Ray", hint="pip install 'stead[ray]' (on this machine and the workers)"
            ) from None
        return ray

    def launch(
        self,
        settings: Settings,
        project_file: Path,
        model: str,
        *,
        pipeline_id: str | None = None,
        trigger: str = "manual",
        reason: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Outcome:
        if settings.backend == "http":
            raise ConfigError(
                "the ray executor needs the store itself (a folder or postgresql://), not a stead server",
                hint="set STEAD_URI=postgresql://… and STEAD_ARTIFACTS=s3://… where the controller runs",
            )
        ray = self._ray()
        project = Path(project_file).resolve()
        runtime_env: dict[str, Any] | None = None
        target = str(project)
        if self.address.startswith("ray://"):
            runtime_env = {"working_dir": str(project.parent)}
            target = project.name
        if not ray.is_initialized():
            ray.init(address=self.address, runtime_env=runtime_env, include_dashboard=False, log_to_driver=False)
        task = ray.remote(num_cpus=self.num_cpus, max_retries=0)(_run_remote)
        where = f"ray ({self.address})"
        try:
            result = ray.get(task.remote(settings, target, model, pipeline_id, trigger, reason, dict(params or {})))
        except Exception as exc:  # a RayTaskError wraps the pipeline's own error
            cause = getattr(exc, "cause", None) or exc
            message = cause.message if isinstance(cause, SteadError) else f"{type(cause).__name__}: {cause}"
            return Outcome(False, error=message.strip().splitlines()[0] if message.strip() else message, where=where)
        return Outcome(True, dict(result), where=where)


def executor_for(spec: ExecutorSpec | None) -> LocalExecutor | RayExecutor:
    """The executor a model's ``executor`` section names (``local`` when there is none)."""
    if spec is None or spec.type == "local":
        return LocalExecutor()
    assert spec.address is not None  # the schema requires it for ray
    return RayExecutor(spec.address)
