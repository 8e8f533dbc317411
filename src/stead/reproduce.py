"""Reproduce a run: re-launch its recorded command with its data versions, params and seed, then compare
(layer: reproduce; beside lineage, above tracking).

The launched process gets ``STEAD_REPRODUCE_OF=<run id>``; ``start_run`` then reuses the recorded seed,
links the new run to the old one (edge ``reproduces``) and refuses a dataset whose content changed.
With ``checkout=True`` the recorded git commit runs in a temporary worktree.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stead.entities import Run
from stead.environment import diff_packages, git_info, packages
from stead.errors import SteadError, ValidationError

if TYPE_CHECKING:
    from stead.store.sql import SqlStore

__all__ = ["MetricDiff", "ReproduceReport", "command_of", "reproduce"]


@dataclass(frozen=True)
class MetricDiff:
    key: str
    recorded: float
    reproduced: float | None
    within: bool

    @property
    def difference(self) -> float | None:
        if self.reproduced is None:
            return None
        if math.isnan(self.recorded) and math.isnan(self.reproduced):
            return 0.0
        if self.recorded == self.reproduced:
            return 0.0
        return self.reproduced - self.recorded


@dataclass
class ReproduceReport:
    original: Run
    reproduced: Run
    tolerance: float
    metrics: list[MetricDiff] = field(default_factory=list)
    packages: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(m.within for m in self.metrics)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 4

    def to_dict(self) -> dict[str, Any]:
        return {
            "original": self.original.id,
            "reproduced": self.reproduced.id,
            "tolerance": self.tolerance,
            "ok": self.ok,
            "metrics": [
                {
                    "key": m.key,
                    "recorded": m.recorded,
                    "reproduced": m.reproduced,
                    "difference": m.difference,
                    "within": m.within,
                }
                for m in self.metrics
            ],
            "packages": [{"name": n, "recorded": a, "current": b} for n, a, b in self.packages],
            "warnings": self.warnings,
        }


def command_of(run: Run) -> list[str]:
    """The command that re-launches ``run``'s recorded entrypoint with the current interpreter."""
    argv = [str(a) for a in run.env.get("argv") or []]
    if not argv or argv[0] in ("", "-c", "-"):
        raise ValidationError(
            f"run {run.id} was not started from a script (its command line is {argv!r}), so it cannot be re-run",
            hint="start the training from a script file (python train.py) or with stead run MODEL",
        )
    if "--pipeline-id" in argv[:-1]:  # a run the controller started: re-run its pipeline, not its record
        at = argv.index("--pipeline-id")
        argv = argv[:at] + argv[at + 2 :]
    first = Path(argv[0])
    if first.suffix == ".py":
        return [sys.executable, argv[0], *argv[1:]]
    if first.name == "stead" or first.name == "__main__.py":
        return [sys.executable, "-m", "stead", *argv[1:]]
    return argv


def _within(recorded: float, reproduced: float | None, tolerance: float) -> bool:
    if reproduced is None:
        return False
    if math.isnan(recorded) or math.isnan(reproduced):
        return math.isnan(recorded) and math.isnan(reproduced)
    if math.isinf(recorded) or math.isinf(reproduced):
        return recorded == reproduced
    return abs(reproduced - recorded) <= tolerance


def _worktree(git: dict[str, Any]) -> Path:
    root, commit = git.get("root"), git.get("commit")
    if not root or not commit:
        raise ValidationError("the run has no recorded git commit to check out", hint="run without --checkout")
    target = Path(tempfile.mkdtemp(prefix="stead-reproduce-"))
    result = subprocess.run(
        ["git", "-C", str(root), "worktree", "add", "--detach", str(target), str(commit)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        raise SteadError(
            f"could not check out commit {str(commit)[:12]} of {root}: {result.stderr.strip()}",
            hint="is the repository still there, with that commit?",
        )
    return target


def reproduce(
    store: SqlStore, run_id: str, tolerance: float | None = None, checkout: bool = False, quiet: bool = False
) -> ReproduceReport:
    """Re-run ``run_id`` and compare every metric; see the module docstring."""
    original = store.get_run(run_id)
    if original.status == "RUNNING":
        raise ValidationError(f"run {run_id} is still RUNNING", hint="wait for it to finish, then reproduce it")
    tol = 0.0 if tolerance is None else float(tolerance)
    if not tol >= 0:
        raise ValidationError(f"--tolerance must be a non-negative number, got {tolerance!r}")
    command = command_of(original)
    env_rec = original.env
    cwd = Path(str(env_rec.get("cwd") or "."))
    warnings: list[str] = []
    git = env_rec.get("git") or {}
    worktree: Path | None = None
    if checkout:
        worktree = _worktree(git)
        root = Path(str(git["root"]))
        try:
            cwd = worktree / cwd.relative_to(root)
        except ValueError:
            cwd = worktree
        command = [
            str(worktree / Path(a).relative_to(root)) if Path(a).is_absolute() and Path(a).is_relative_to(root) else a
            for a in command
        ]
    elif git.get("commit"):
        now = git_info(cwd)
        if now is None or now.get("commit") != git.get("commit"):
            warnings.append(
                f"the code is at commit {str((now or {}).get('commit') or 'unknown')[:12]}, the run used "
                f"{str(git['commit'])[:12]}: use --checkout to run the recorded commit"
            )
        elif now.get("diff_hash") != git.get("diff_hash"):
            warnings.append("the working tree differs from the run's (uncommitted changes)")
    recorded_python = str(env_rec.get("python", {}).get("version", ""))
    if recorded_python and recorded_python.split(".")[:2] != [str(v) for v in sys.version_info[:2]]:
        warnings.append(f"the run used Python {recorded_python}, this is {sys.version.split()[0]}")
    child_env = dict(os.environ)
    child_env["STEAD_REPRODUCE_OF"] = original.id
    child_env["STEAD_URI"] = store.settings.uri
    if store.settings.artifacts:
        child_env["STEAD_ARTIFACTS"] = store.settings.artifacts
    if store.settings.token:
        child_env["STEAD_TOKEN"] = store.settings.token
    started = time.time()
    try:
        result = subprocess.run(
            command,
            cwd=cwd,
            env=child_env,
            stdout=subprocess.DEVNULL if quiet else None,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        if worktree is not None:
            subprocess.run(
                ["git", "-C", str(git["root"]), "worktree", "remove", "--force", str(worktree)], capture_output=True
            )
            shutil.rmtree(worktree, ignore_errors=True)
    if result.returncode != 0:
        last = (result.stderr or "").strip().splitlines()[-1:] or ["(no output)"]
        raise SteadError(
            f"the reproduction of run {original.id} failed (exit {result.returncode}): {last[0]}",
            hint=f"command: {' '.join(command)} (in {cwd})",
        )
    edges = [
        e
        for e in store.edges_of([f"run:{original.id}"], "down")
        if e["kind"] == "reproduces" and e["at"] >= started - 1
    ]
    if not edges:
        raise SteadError(
            f"the command ran but started no run in experiment {original.experiment!r}",
            hint=f"command: {' '.join(command)}",
        )
    newest = max(edges, key=lambda e: e["at"])["target"].split(":", 1)[1]
    reproduced = store.get_run(newest)
    diffs = [
        MetricDiff(key, value, reproduced.metrics.get(key), _within(value, reproduced.metrics.get(key), tol))
        for key, value in sorted(original.metrics.items())
    ]
    if original.params != reproduced.params:
        changed = sorted(
            k
            for k in set(original.params) | set(reproduced.params)
            if original.params.get(k) != reproduced.params.get(k)
        )
        warnings.append(f"params differ from the recorded run: {', '.join(changed)}")
    package_diffs = diff_packages(list(env_rec.get("packages") or []), packages())
    return ReproduceReport(original, reproduced, tol, diffs, package_diffs, warnings)
