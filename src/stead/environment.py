"""Environment capture (layer: environment; imports only ``stead.errors``).

A run records where it ran without being asked: ``capture()`` returns a JSON-serializable dict ::

    {
      "python":   {"version": "3.11.7", "implementation": "CPython", "executable": "/…/python"},
      "platform": {"system": "Linux", "release": "6.1…", "machine": "x86_64", "platform": "Linux-…"},
      "packages": ["numpy==2.4.6", "pandas==3.1.1", …],   # sorted, PEP 503 names, one per distribution
      "packages_hash": "<sha256 hex of '\\n'.join(packages)>",
      "git": {"commit": "<sha>"|None, "branch": "main"|None, "dirty": bool,
              "diff_hash": "<sha256 hex of `git diff HEAD --binary`>"|None, "root": "/…"} | None,
      "argv": [...], "cwd": "/…", "seed": 42|None, "hostname": "…", "user": "…"|None,
    }

Notes:

- ``packages`` is read from the ``*.dist-info`` / ``*.egg-info`` folders on ``sys.path`` (the same place
  ``importlib.metadata`` looks, but without parsing every METADATA file, which takes ~100 ms). When a
  distribution is installed twice, the first one on ``sys.path`` wins, as it does for ``import``. The list
  is cached per process, keyed on ``sys.path``.
- ``git`` is ``None`` outside a work tree, when git is missing, or when any git call fails or takes more
  than a few seconds: capturing never fails the caller. ``dirty`` means tracked files differ from ``HEAD``
  (untracked files do not count, as with ``git describe --dirty``); ``diff_hash`` is then the sha256 of
  ``git diff HEAD --binary`` (against the empty tree before the first commit), else ``None``.
  ``commit`` is ``None`` before the first commit and ``branch`` is ``None`` on a detached HEAD.
- This module never imports numpy, pandas or torch at import time; ``seed_everything`` imports numpy
  when called and seeds torch only when it is already imported.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import platform
import random
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from stead.errors import ValidationError

__all__ = ["capture", "diff_packages", "normalize_name", "packages", "seed_everything"]

GIT_TIMEOUT = 5.0
"""Seconds each git call may take before the git section is given up (set to ``None``)."""

_NORMALIZE = re.compile(r"[-_.]+")
_DIST_INFO = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)\.dist-info$", re.IGNORECASE)
_PACKAGES_CACHE: dict[tuple[str, ...], list[str]] = {}


def normalize_name(name: str) -> str:
    """The PEP 503 form of a distribution name: lowercase, runs of ``-_.`` become one ``-``."""
    return _NORMALIZE.sub("-", name).lower().strip()


def _read_header(path: Path) -> tuple[str | None, str | None]:
    """Name and Version from a METADATA / PKG-INFO file, reading only the header block."""
    name: str | None = None
    version: str | None = None
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key == "name" and name is None:
                    name = value.strip()
                elif key == "version" and version is None:
                    version = value.strip()
                if name is not None and version is not None:
                    break
    except OSError:
        return None, None
    return name, version


def _dist_from_entry(entry: os.DirEntry[str]) -> tuple[str, str] | None:
    """``(normalized name, version)`` of one ``*.dist-info`` / ``*.egg-info`` entry, or None."""
    fname = entry.name
    lower = fname.lower()
    if lower.endswith(".dist-info"):
        match = _DIST_INFO.match(fname)
        if match:
            return normalize_name(match["name"]), match["version"]
        name, version = _read_header(Path(entry.path) / "METADATA")
    elif lower.endswith(".egg-info"):
        meta = Path(entry.path) / "PKG-INFO" if entry.is_dir() else Path(entry.path)
        name, version = _read_header(meta)
    else:
        return None
    if not name or not version:
        return None
    return normalize_name(name), version


def _scan_packages(path: list[str]) -> list[str]:
    found: dict[str, str] = {}
    for item in path:
        directory = item or os.getcwd()
        if os.path.isdir(directory):
            try:
                with os.scandir(directory) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                dist = _dist_from_entry(entry)
                if dist is not None:
                    found.setdefault(dist[0], dist[1])
        elif os.path.isfile(directory):  # a zip on sys.path: rare, let importlib.metadata read it
            import importlib.metadata as md

            try:
                for dist_obj in md.distributions(path=[directory]):
                    name = dist_obj.metadata["Name"]
                    if name:
                        found.setdefault(normalize_name(name), dist_obj.version)
            except Exception:  # a broken zip must not fail a run
                continue
    return sorted(f"{name}=={version}" for name, version in found.items())


def packages() -> list[str]:
    """Sorted ``name==version`` of every installed distribution (cached per process and ``sys.path``)."""
    key = tuple(sys.path)
    cached = _PACKAGES_CACHE.get(key)
    if cached is None:
        cached = _scan_packages(list(key))
        _PACKAGES_CACHE[key] = cached
    return list(cached)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _git(args: list[str], cwd: Path, *, check: bool = True) -> bytes | None:
    """Run ``git ARGS`` in ``cwd``; its stdout, or None on any failure (missing git, timeout, non-zero exit)."""
    env = dict(os.environ)
    env.update({"LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"})
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if check and proc.returncode != 0:
        return None
    return proc.stdout


def git_info(cwd: Path | None = None) -> dict[str, Any] | None:
    """The ``git`` section of :func:`capture` for ``cwd`` (default: the current directory), or None."""
    where = Path.cwd() if cwd is None else Path(cwd)
    root_out = _git(["rev-parse", "--show-toplevel"], where)
    if root_out is None:
        return None
    root = root_out.decode("utf-8", "replace").strip()
    status = _git(["status", "--porcelain=v2", "--branch", "--untracked-files=no", "--ignore-submodules=none"], where)
    if status is None:
        return None
    commit: str | None = None
    branch: str | None = None
    dirty = False
    for raw in status.decode("utf-8", "replace").splitlines():
        if raw.startswith("# branch.oid "):
            oid = raw.removeprefix("# branch.oid ").strip()
            commit = None if oid == "(initial)" else oid
        elif raw.startswith("# branch.head "):
            head = raw.removeprefix("# branch.head ").strip()
            branch = None if head == "(detached)" else head
        elif raw and not raw.startswith("#"):
            dirty = True
    diff_hash: str | None = None
    if dirty:
        base = "HEAD" if commit is not None else _empty_tree(where)
        diff = None if base is None else _git(["diff", base, "--binary", "--no-color", "--no-ext-diff"], where)
        if diff is None:
            return None
        diff_hash = _sha256(diff)
    return {"commit": commit, "branch": branch, "dirty": dirty, "diff_hash": diff_hash, "root": root}


def _empty_tree(cwd: Path) -> str | None:
    """The empty tree's id in this repository's hash (sha1 or sha256), to diff against before the first commit."""
    out = _git(["hash-object", "-t", "tree", "/dev/null"], cwd)
    return None if out is None else out.decode().strip()


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry and no USER/LOGNAME (some containers)
        return None


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValidationError(f"seed must be an integer, got {type(seed).__name__}", hint="pass an int such as seed=42")
    if not 0 <= seed < 2**32:
        raise ValidationError(f"seed must be between 0 and 2**32 - 1, got {seed}", hint="pass a non-negative int")
    return seed


def capture(seed: int | None = None, argv: list[str] | None = None, cwd: Path | None = None) -> dict[str, Any]:
    """Describe the running environment as a JSON-serializable dict (see the module docstring for its shape).

    ``argv`` defaults to ``sys.argv`` and ``cwd`` to the current directory; git is asked about ``cwd``.
    Raises ``ValidationError`` only for a bad ``seed``; everything else degrades (``git``/``user`` None).
    """
    if seed is not None:
        seed = _check_seed(seed)
    where = (Path.cwd() if cwd is None else Path(cwd)).resolve()
    pkgs = packages()
    uname = platform.uname()
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": {
            "system": uname.system,
            "release": uname.release,
            "machine": uname.machine,
            "platform": platform.platform(),
        },
        "packages": pkgs,
        "packages_hash": _sha256("\n".join(pkgs).encode("utf-8")),
        "git": git_info(where),
        "argv": [str(a) for a in (sys.argv if argv is None else argv)],
        "cwd": str(where),
        "seed": seed,
        "hostname": socket.gethostname(),
        "user": _user(),
    }


def seed_everything(seed: int) -> None:
    """Seed ``random``, numpy's global RNG and, when ``torch`` is already imported, torch (CPU and CUDA).

    torch is never imported here. ``PYTHONHASHSEED`` cannot be changed for a running process and is left alone.
    """
    seed = _check_seed(seed)
    random.seed(seed)
    try:
        import numpy as np
    except ImportError:  # numpy is a dependency, but seeding must not fail without it
        pass
    else:
        np.random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
        cuda = getattr(torch, "cuda", None)
        if cuda is not None:
            try:
                cuda.manual_seed_all(seed)
            except Exception:  # CUDA present but unusable: CPU seeding already happened
                pass


def _parse(entries: list[str], which: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, str) or "==" not in entry:
            raise ValidationError(
                f"{which} package entry {entry!r} is not of the form 'name==version'",
                hint="pass the 'packages' list recorded by stead.environment.capture()",
            )
        name, _, version = entry.partition("==")
        out[normalize_name(name)] = version.strip()
    return out


def diff_packages(recorded: list[str], current: list[str]) -> list[tuple[str, str | None, str | None]]:
    """The differences between two ``name==version`` lists, sorted by name.

    Each item is ``(name, recorded_version, current_version)``; a version is None when the package is missing
    on that side. Names are compared in their PEP 503 form. A malformed entry raises ``ValidationError``.
    """
    old = _parse(recorded, "recorded")
    new = _parse(current, "current")
    return [
        (name, old.get(name), new.get(name))
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    ]
