"""The public surface: `stead.__all__` is exactly what is exported, and importing stead stays cheap."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import stead


def test_all_lists_exactly_the_public_names() -> None:
    # Everything public except submodules and the `from __future__` marker.
    public = {
        name
        for name in dir(stead)
        if not name.startswith("_") and name != "annotations" and not isinstance(getattr(stead, name), ModuleType)
    }
    assert set(stead.__all__) == public | {"__version__"}
    assert stead.__all__ == sorted(stead.__all__)
    for name in stead.__all__:
        assert getattr(stead, name) is not None


def test_the_errors_of_the_contract_are_importable_from_stead() -> None:
    from stead import ConflictError, IntegrityError, NotFoundError, SteadError, ValidationError

    for cls in (ValidationError, NotFoundError, ConflictError, IntegrityError):
        assert issubclass(cls, SteadError)


def test_import_stead_pulls_in_no_heavy_library() -> None:
    code = (
        "import sys, stead; heavy = [m for m in ('pandas', 'numpy', 'sqlalchemy', 'scipy', 'pyarrow', 'starlette') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_stead_help_is_fast() -> None:
    """`stead --help` costs under 0.5 s of CPU (CPU time, not wall time, so a busy machine does not fail it)."""
    exe = str(Path(sys.executable).with_name("stead"))
    subprocess.run([exe, "--help"], capture_output=True, check=True)  # warm the file cache
    best = min(_cpu_seconds([exe, "--help"]) for _ in range(3))
    assert best < 0.5, f"stead --help took {best:.2f} s of CPU"


def _cpu_seconds(cmd: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, capture_output=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
