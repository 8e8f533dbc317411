"""The model registry: register, resolve and load model versions; aliases and states (layer: registry).

Registering saves the model with its flavor (``stead.flavors``) into a temporary folder, puts every file
into the content-addressed artifact store (the bytes are durable first), then records the version in one
store call: a dense, unique number per model, the sha256 manifest, signature, requirements, state
``candidate`` and the lineage edge from its run. Loading resolves a reference (``NAME@ALIAS``,
``NAME/N``), copies the files out of the artifact store (each one verified against its digest) and checks
the manifest again before the flavor reads anything. Model sources are only stored artifact digests,
never user paths or URIs.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from stead.entities import AliasMove, ModelVersion, Ref, check_alias, check_name
from stead.errors import IntegrityError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from stead.flavors import LoadedModel
    from stead.store.sql import SqlStore

__all__ = [
    "UNSET",
    "delete_alias",
    "get_model_version",
    "load_model",
    "parse_version",
    "register_model",
    "set_alias",
    "set_state",
    "trust",
]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
"""``expected=UNSET`` (the default) moves an alias unconditionally; ``None`` means "must not exist yet"."""


def register_model(
    store: SqlStore,
    name: str,
    model: Any,
    run_id: str | None = None,
    input_example: Any = None,
    convert: str | None = None,
    allow_pickle: bool = False,
    *,
    artifacts: Mapping[str, Any] | None = None,
    input_schema: list[dict[str, Any]] | None = None,
    metrics: Mapping[str, float] | None = None,
    packages: Sequence[str] | None = None,
) -> ModelVersion:
    """Store ``model`` as the next version of ``name`` and return it (state ``candidate``).

    ``model`` is a scikit-learn estimator, an ONNX ``ModelProto``, an import path ``"module:Class"`` (with
    ``artifacts``), or, with ``allow_pickle=True``, any object with ``predict``. ``input_schema`` (as from
    ``stead.datasets.schema``) overrides the dtypes read from ``input_example``; ``packages`` (``name==version``)
    defaults to the run's recorded environment, else what is installed.
    """
    from stead import flavors

    check_name(name, "model name")
    if packages is None and run_id is not None:
        packages = store.get_run(run_id).env.get("packages") or None
    with tempfile.TemporaryDirectory(prefix="stead-register-") as tmp:
        folder = Path(tmp) / "model"
        saved = flavors.save_model(
            model,
            folder,
            input_example=input_example,
            input_schema=input_schema,
            convert=convert,
            allow_pickle=allow_pickle,
            artifacts=artifacts,
            packages=packages,
        )
        manifest = store.artifacts.put_tree(folder)
    if manifest != saved.manifest:  # pragma: no cover - the folder changed under us
        raise IntegrityError(f"model {name!r}: its files changed while they were stored", hint="register it again")
    return store.create_model_version(
        name,
        saved.flavor,
        manifest,
        signature=saved.signature,
        requirements=saved.requirements,
        run_id=run_id,
        allow_pickle=saved.needs_pickle,
        metrics=dict(metrics) if metrics else None,
    )


def parse_version(text: str) -> tuple[str, int]:
    """``"churn/3"`` (or ``"churn@3"``) -> ``("churn", 3)``; an alias is refused."""
    ref = Ref.parse(text)
    if ref.kind != "version" or ref.name is None or ref.version is None:
        raise ValidationError(f"{text!r} is not NAME/VERSION", hint="for example: churn/3")
    return ref.name, ref.version


def get_model_version(store: SqlStore, name: str, version_or_alias: int | str) -> ModelVersion:
    """A version by number (``3`` or ``"3"``) or by alias (``"champion"``)."""
    check_name(name, "model name")
    if isinstance(version_or_alias, bool):
        raise ValidationError(f"version must be a number or an alias, got {version_or_alias!r}")
    if isinstance(version_or_alias, int):
        return store.get_model_version(name, version_or_alias)
    text = str(version_or_alias)
    if text.isdigit():
        return store.get_model_version(name, int(text))
    return store.resolve_version(Ref(kind="alias", name=name, alias=check_alias(text)))


def _resolve(store: SqlStore, ref: str | Ref | ModelVersion) -> ModelVersion:
    if isinstance(ref, ModelVersion):
        return store.get_model_version(ref.name, ref.version)
    return store.resolve_version(Ref.parse(ref) if isinstance(ref, str) else ref)


def _materialize(store: SqlStore, version: ModelVersion, dest: Path, label: str) -> None:
    """Copy every file of the version out of the artifact store, each verified against its digest."""
    from stead import flavors

    manifest = version.manifest
    if not manifest or flavors.META_FILE not in manifest:
        raise IntegrityError(f"{label}: its manifest lists no {flavors.META_FILE}", hint="register the model again")
    for file, digest in sorted(manifest.items()):
        target = dest / file
        if not target.resolve().is_relative_to(dest.resolve()) or ".." in Path(file).parts:
            raise IntegrityError(f"{label}: file {file!r} of the manifest points outside the model folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            store.artifacts.copy_to(digest, target, name=file)
        except IntegrityError as exc:
            raise IntegrityError(
                f"{label}: file {file!r} is corrupted in the artifact store: {exc.message}",
                hint="the stored bytes were damaged or tampered with; restore them or register the model again",
                details={"file": file, "digest": digest},
            ) from exc
        except (NotFoundError, FileNotFoundError) as exc:
            raise IntegrityError(
                f"{label}: file {file!r} (sha256 {digest}) is missing from the artifact store",
                hint="restore the artifact store from a backup or register the model again",
                details={"file": file, "digest": digest},
            ) from exc


def load_model(store: SqlStore, ref: str | Ref | ModelVersion) -> LoadedModel:
    """Load a model version by reference, integrity checked; see the module docstring.

    A pickle-based version loads only with the opt-in recorded on it (``allow_pickle=True`` when it was
    registered, or ``stead models trust NAME/VERSION --reason …``).
    """
    from stead import flavors

    version = _resolve(store, ref)
    label = f"model {version.name}/{version.version}"
    folder = Path(tempfile.mkdtemp(prefix=f"stead-model-{version.name}-{version.version}-"))
    try:
        _materialize(store, version, folder, label)
        flavors.verify_folder(folder, version.manifest, label)
        meta = flavors.read_meta(folder)
        if meta.get("format") in flavors.PICKLE_FORMATS and not version.allow_pickle:
            raise ValidationError(
                f"{label} is stored with pickle, which runs code when loaded, and nobody opted in to load it; "
                f"an admin can allow it with: stead models trust {version.name}/{version.version} --reason '…'",
                hint=f"if you trust it: stead models trust {version.name}/{version.version} --reason '…'",
            )
        loaded = flavors.load_model(folder, allow_pickle=version.allow_pickle, label=label)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    loaded.name, loaded.version, loaded.folder = version.name, version.version, folder
    loaded.signature = dict(version.signature) or loaded.signature
    weakref.finalize(loaded, shutil.rmtree, str(folder), True)
    return loaded


def set_alias(
    store: SqlStore,
    name: str,
    alias: str,
    version: int,
    expected: int | _Unset | None = UNSET,
    reason: str | None = None,
    actor: str | None = None,
) -> AliasMove:
    """Move ``alias`` to ``version``; with ``expected`` (a version, or None for "no such alias yet") it is a
    compare-and-set that raises ConflictError when the alias moved in between. Every attempt is audited."""
    check_name(name, "model name")
    check_alias(alias)
    check = not isinstance(expected, _Unset)
    want = None if isinstance(expected, _Unset) else expected
    return store.set_alias(name, alias, version, want, check, reason, actor)


def delete_alias(
    store: SqlStore,
    name: str,
    alias: str,
    expected: int | _Unset | None = UNSET,
    reason: str | None = None,
    actor: str | None = None,
) -> AliasMove:
    """Remove an alias (compare-and-set with ``expected``); the attempt is audited."""
    check_name(name, "model name")
    check_alias(alias)
    check = not isinstance(expected, _Unset)
    want = None if isinstance(expected, _Unset) else expected
    return store.delete_alias(name, alias, want, check, reason, actor)


def trust(store: SqlStore, name: str, version: int, reason: str, actor: str | None = None) -> ModelVersion:
    """Record the audited opt-in to load a pickle-based version."""
    check_name(name, "model name")
    return store.trust_version(name, version, reason, actor)


def set_state(
    store: SqlStore,
    name: str,
    version: int,
    state: str,
    reason: str | None = None,
    gate_results: list[dict[str, Any]] | None = None,
    actor: str | None = None,
) -> ModelVersion:
    """Move a version along candidate -> approved | rejected -> serving -> retired; a rejected version
    cannot become serving here (ConflictError)."""
    check_name(name, "model name")
    return store.set_version_state(name, version, state, reason, gate_results, actor)
