from __future__ import annotations

import getpass
import hashlib
import importlib.metadata as md
import json
import random
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from stead import environment
from stead.environment import capture, diff_packages, normalize_name, seed_everything
from stead.errors import ValidationError

# --------------------------------------------------------------------------------------------- capture


def test_capture_has_every_field_and_is_json() -> None:
    env = capture(seed=7, argv=["train.py", "--fast"])
    assert set(env) == {
        "python",
        "platform",
        "packages",
        "packages_hash",
        "git",
        "argv",
        "cwd",
        "seed",
        "hostname",
        "user",
    }
    assert env["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert env["python"]["implementation"] == "CPython"
    assert env["python"]["executable"] == sys.executable
    assert set(env["platform"]) == {"system", "release", "machine", "platform"}
    assert env["argv"] == ["train.py", "--fast"]
    assert env["seed"] == 7
    assert env["cwd"] == str(Path.cwd().resolve())
    assert isinstance(env["hostname"], str) and env["hostname"]
    assert json.loads(json.dumps(env)) == env


def test_capture_defaults() -> None:
    env = capture()
    assert env["argv"] == sys.argv
    assert env["seed"] is None


def test_packages_are_sorted_normalized_and_match_importlib_metadata() -> None:
    pkgs = capture()["packages"]
    assert pkgs == sorted(pkgs)
    names = [p.split("==")[0] for p in pkgs]
    assert len(names) == len(set(names))
    assert all(name == normalize_name(name) for name in names)
    assert f"numpy=={np.__version__}" in pkgs
    assert f"pandas=={md.version('pandas')}" in pkgs
    expected = sorted({f"{normalize_name(d.metadata['Name'])}=={d.version}" for d in md.distributions()})
    assert pkgs == expected


def test_packages_hash_is_sha256_of_the_list_and_stable() -> None:
    first, second = capture(), capture()
    assert first["packages_hash"] == hashlib.sha256("\n".join(first["packages"]).encode()).hexdigest()
    assert first["packages_hash"] == second["packages_hash"]


def test_packages_cache_follows_sys_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "Fake_Pkg-1.2.3.dist-info").mkdir()
    (tmp_path / "numpy-0.0.1.dist-info").mkdir()  # shadowed: the earlier sys.path entry wins
    egg = tmp_path / "Old.Thing.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: Old.Thing\nVersion: 0.9\n\nbody\n")
    before = capture()["packages"]
    monkeypatch.setattr(sys, "path", [*sys.path, str(tmp_path)])
    after = capture()["packages"]
    assert "fake-pkg==1.2.3" in after
    assert "old-thing==0.9" in after
    assert "numpy==0.0.1" not in after
    assert set(after) - set(before) == {"fake-pkg==1.2.3", "old-thing==0.9"}


def test_capture_is_fast_once_warm() -> None:
    import time

    capture()
    start = time.perf_counter()
    capture()
    assert time.perf_counter() - start < 1.0  # typically ~10 ms; generous for loaded CI machines


def test_environment_does_not_import_numpy_or_pandas() -> None:
    code = "import sys, stead.environment as e; e.capture(); print('numpy' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_bad_seed_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="seed"):
        capture(seed="42")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="seed"):
        seed_everything(-1)
    with pytest.raises(ValidationError, match="seed"):
        seed_everything(True)


# --------------------------------------------------------------------------------------------- git


@pytest.fixture
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated git configuration; returns a folder that is not inside any repository."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    work = tmp_path / "work"
    work.mkdir()
    return work


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=CI", "-c", "commit.gpgsign=false", *args]
    return subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def test_git_info_in_a_real_repository(git_env: Path) -> None:
    repo = git_env
    _git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("print('hello')\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "Add train.py")
    head = _git(repo, "rev-parse", "HEAD")

    clean = capture(cwd=repo)["git"]
    assert clean == {"commit": head, "branch": "main", "dirty": False, "diff_hash": None, "root": str(repo.resolve())}

    (repo / "notes.txt").write_text("untracked files do not make the tree dirty\n")
    assert capture(cwd=repo)["git"]["dirty"] is False

    (repo / "train.py").write_text("print('edited')\n")
    first = capture(cwd=repo)["git"]
    assert first["dirty"] is True
    assert first["commit"] == head
    diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=repo, capture_output=True, check=True).stdout
    assert first["diff_hash"] == hashlib.sha256(diff).hexdigest()

    (repo / "train.py").write_text("print('edited again')\n")
    second = capture(cwd=repo)["git"]
    assert second["dirty"] is True
    assert second["diff_hash"] != first["diff_hash"]

    sub = repo / "src"
    sub.mkdir()
    assert capture(cwd=sub)["git"]["root"] == str(repo.resolve())

    _git(repo, "checkout", "-q", "--detach")
    assert capture(cwd=repo)["git"]["branch"] is None


def test_git_info_before_the_first_commit(git_env: Path) -> None:
    _git(git_env, "init", "-q", "-b", "main")
    info = capture(cwd=git_env)["git"]
    assert info is not None
    assert info["commit"] is None and info["dirty"] is False and info["branch"] == "main"
    (git_env / "a.txt").write_text("a\n")
    _git(git_env, "add", "a.txt")
    staged = capture(cwd=git_env)["git"]
    assert staged["dirty"] is True and staged["diff_hash"] is not None


def test_git_is_none_outside_a_repository(git_env: Path) -> None:
    assert capture(cwd=git_env)["git"] is None


def test_git_missing_never_fails(git_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(git_env))  # no git on PATH
    env = capture(cwd=git_env)
    assert env["git"] is None


def test_git_timeout_never_fails(git_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(*args: object, **kwargs: object) -> None:
        raise subprocess.TimeoutExpired(cmd="git", timeout=environment.GIT_TIMEOUT)

    monkeypatch.setattr(subprocess, "run", slow)
    assert capture(cwd=git_env)["git"] is None


# --------------------------------------------------------------------------------------------- seeding


def test_seed_everything_makes_random_and_numpy_reproducible() -> None:
    seed_everything(123)
    first = (random.random(), np.random.rand(3).tolist())
    seed_everything(123)
    second = (random.random(), np.random.rand(3).tolist())
    seed_everything(124)
    third = (random.random(), np.random.rand(3).tolist())
    assert first == second
    assert first != third


def test_seed_everything_never_imports_torch() -> None:
    code = "import sys, stead.environment as e; e.seed_everything(1); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_seed_everything_seeds_an_imported_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []
    torch = types.ModuleType("torch")
    torch.manual_seed = lambda s: calls.append(("cpu", s))  # type: ignore[attr-defined]
    torch.cuda = types.SimpleNamespace(manual_seed_all=lambda s: calls.append(("cuda", s)))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)
    seed_everything(5)
    assert calls == [("cpu", 5), ("cuda", 5)]


# --------------------------------------------------------------------------------------------- diff_packages


def test_diff_packages() -> None:
    recorded = ["numpy==1.26.0", "pandas==2.1.0", "Scikit_Learn==1.4.0", "gone==1.0"]
    current = ["numpy==1.26.0", "pandas==2.2.0", "scikit-learn==1.4.0", "new-one==0.1"]
    assert diff_packages(recorded, current) == [
        ("gone", "1.0", None),
        ("new-one", None, "0.1"),
        ("pandas", "2.1.0", "2.2.0"),
    ]
    assert diff_packages(current, current) == []


def test_diff_packages_rejects_malformed_entries() -> None:
    with pytest.raises(ValidationError, match="name==version"):
        diff_packages(["numpy"], [])


def test_capture_packages_round_trip_through_diff() -> None:
    pkgs = capture()["packages"]
    assert diff_packages(pkgs, pkgs) == []
    changed = [p for p in pkgs if not p.startswith("numpy==")]
    assert diff_packages(pkgs, changed) == [("numpy", np.__version__, None)]


def test_user_falls_back_to_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_user() -> str:
        raise KeyError("uid not found")

    monkeypatch.setattr(getpass, "getuser", no_user)
    assert capture()["user"] is None
