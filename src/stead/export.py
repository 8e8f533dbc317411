"""Container build contexts and Kubernetes manifests for a model version: ``stead build`` (layer: export).

``build_context(store, "churn@champion", out)`` writes a folder that ``docker build`` turns into an image:

- ``Dockerfile``: the slim official Python image of the recorded Python version (``python:X.Y.Z-slim-bookworm``),
  a non-root user (uid 10001), the pinned dependencies of ``requirements.lock`` installed with ``--no-deps``
  and checked with ``pip check``, stead from ``wheels/`` (``--no-index``), the model's files checked against
  their sha256 at build time (``sha256sum --check`` and ``python -m stead.export verify``), a ``HEALTHCHECK``
  on ``/v2/health/ready`` and ``stead serve`` as the entrypoint;
- ``requirements.lock``: for ``serve``, what serving needs (stead's own dependencies with its ``postgres``
  and ``s3`` extras, plus the flavor's libraries) and everything they depend on, each pinned to the version
  the version's run recorded (the installed one where the run did not record it); for ``train``, the run's
  whole recorded environment;
- ``model/``: ``files/`` (the version's files), ``manifest.json``, ``SHA256SUMS`` and ``metadata.json``
  (the version's record: flavor, signature, requirements, where it came from, the deployment it serves);
- ``wheels/``: a wheel of the stead that built the context (stead is not on PyPI), made from the installed
  package by ``stead_wheel`` (reproducible: the same source gives the same bytes);
- ``.dockerignore`` (only what the Dockerfile copies is sent to the engine) and ``README.md``;
- with ``k8s=True``, ``k8s/``: a ConfigMap, a Secret (placeholders only), a Deployment with readiness and
  liveness probes on the OIP health routes, a Service, a HorizontalPodAutoscaler and a KServe
  ``InferenceService`` (with ``canaryTrafficPercent`` when the version is a deployment's canary); a Job for
  ``train``.

How the image serves its baked model: ``stead serve`` sees ``STEAD_BAKED_MODEL`` (set by the Dockerfile) and
calls ``boot_baked``. When ``STEAD_URI`` is set the image joins that shared store and the baked files are not
used. Otherwise it creates an embedded store under ``/app/.stead``, registers the baked files (verified
again) as version 1 of the model, and routes the recorded deployment to it; a restart reuses what is there.
With no tokens configured it makes up an admin token nobody knows, so predictions and reads are open and
writes are closed.

Nothing from user input reaches the Dockerfile unchecked: model and deployment names follow the name rule,
versions and package pins their own patterns, and any value with a newline or quote is refused.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import platform
import re
import secrets
import shutil
import sys
import zipfile
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from stead.entities import ModelVersion, Ref, check_name
from stead.errors import ConfigError, IntegrityError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from stead.store.sql import SqlStore

__all__ = [
    "BASE_DEBIAN",
    "PORT",
    "UID",
    "BuildResult",
    "boot_baked",
    "build_context",
    "k8s_name",
    "stead_wheel",
    "verify_model_dir",
]

Purpose = Literal["serve", "train"]
PORT = 8080
UID = 10001
BASE_DEBIAN = "bookworm"
PLACEHOLDER = "REPLACE-ME"
_PY_RE = re.compile(r"3\.\d{1,2}\.\d{1,3}")
_PIN_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?==[A-Za-z0-9][A-Za-z0-9.+!_-]{0,63}")
_VERSION_RE = re.compile(r"[0-9][A-Za-z0-9.+!_-]{0,63}")
_K8S_RE = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_IMAGE_RE = re.compile(
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]{1,5})?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)
# Files never copied into a training context.
_SKIP_DIRS = frozenset({".git", ".stead", ".venv", "venv", "__pycache__", "node_modules", ".mypy_cache", ".ruff_cache"})
# What serving needs beyond stead's own dependencies: the extras that let an image join a shared store.
_SERVE_EXTRAS = ("postgres", "s3")


def _plain(value: str, what: str) -> str:
    """Refuse a value that could break out of the line or the quoted string it is written into."""
    if not isinstance(value, str) or not value or any(c in value for c in "\n\r\"'\\`$\x00"):
        raise ValidationError(f"{what} {value!r} cannot go into a Dockerfile: no newlines, quotes, '\\', '`' or '$'")
    return value


def _python_version(text: str) -> str:
    if not _PY_RE.fullmatch(text or ""):
        raise ValidationError(
            f"the recorded Python version {text!r} is not X.Y.Z", hint="the run's env.python.version is damaged"
        )
    return text


def _pin(text: str) -> str:
    if not _PIN_RE.fullmatch(text):
        raise ValidationError(f"requirement {text!r} is not a plain name==version pin")
    return text


def k8s_name(name: str) -> str:
    """A DNS-1123 label for a model or deployment name: lower case, '_' and '.' become '-'.

    >>> k8s_name("Churn_v2.1")
    'churn-v2-1'
    """
    label = re.sub(r"[^a-z0-9-]+", "-", check_name(name).lower()).strip("-")
    if len(label) > 50:
        label = f"{label[:41].rstrip('-')}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    if not _K8S_RE.fullmatch(label):
        raise ValidationError(f"cannot make a Kubernetes name from {name!r}", hint="use letters and digits")
    return label


# ------------------------------------------------------------------------------------------------ requirements


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _recorded(packages: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in packages:
        name, sep, version = str(item).partition("==")
        if sep and name and version:
            out[_canonical(name)] = version.strip()
    return out


def _installed(name: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def _marker_env(python: str, machine: str) -> dict[str, str]:
    major_minor = ".".join(python.split(".")[:2])
    return {
        "python_version": major_minor,
        "python_full_version": python,
        "implementation_version": python,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": machine,
        "platform_release": "",
        "platform_version": "",
    }


def serving_requirements(
    flavor_requirements: Sequence[str], recorded: Mapping[str, str], python: str, machine: str = "x86_64"
) -> tuple[list[str], list[str]]:
    """``(pins, notes)``: what serving needs and everything it depends on, each ``name==version``.

    The roots are stead's own dependencies (with its ``postgres`` and ``s3`` extras when their packages are
    installed or recorded) and the version's flavor requirements; the closure follows the installed
    distributions' metadata with markers evaluated for Linux and the recorded Python. A package is pinned to
    the recorded version, else the installed one; one that is neither stops the build.
    """
    from packaging.requirements import Requirement

    env = _marker_env(python, machine)
    stead = metadata.distribution("stead")
    roots: list[tuple[Requirement, frozenset[str]]] = []
    notes: list[str] = []
    extras = []
    for extra in _SERVE_EXTRAS:
        members = [
            Requirement(r)
            for r in stead.requires or []
            if Requirement(r).marker and f'"{extra}"' in str(Requirement(r).marker)
        ]
        if members and all(_canonical(m.name) in recorded or _installed(m.name) for m in members):
            extras.append(extra)
        elif members:
            notes.append(f"the {extra!r} extra is left out: {', '.join(m.name for m in members)} is not installed here")
    for text in stead.requires or []:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in ("", *extras)):
            roots.append((req, frozenset()))
    for text in flavor_requirements:
        roots.append((Requirement(text), frozenset()))
    pins: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    queue = list(roots)
    while queue:
        req, _from_extras = queue.pop()
        name = _canonical(req.name)
        key = (name, frozenset(req.extras))
        if key in seen or name == "stead":
            continue
        seen.add(key)
        dist = _installed(req.name)
        version = recorded.get(name) or (dist.version if dist is not None else None)
        if version is None:
            raise NotFoundError(
                f"cannot pin {req.name}: the run did not record it and it is not installed here",
                hint=f"pip install {req.name} on the machine that runs stead build",
            )
        pins[name] = version
        if dist is None:
            notes.append(f"{req.name}: its own dependencies are unknown here (not installed); pip check will tell")
            continue
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is not None and not any(
                sub.marker.evaluate({**env, "extra": e}) for e in ("", *sorted(req.extras))
            ):
                continue
            queue.append((sub, frozenset(req.extras)))
    return [_pin(f"{n}=={v}") for n, v in sorted(pins.items())], notes


# ------------------------------------------------------------------------------------------------ the wheel


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def stead_wheel(dest: str | os.PathLike[str]) -> Path:
    """Write a wheel of the installed stead (editable or not) into ``dest`` and return its path.

    The wheel holds the package's files as installed (no ``__pycache__``) and the distribution's own
    ``METADATA`` and entry points; entries are sorted and dated 1980-01-01, so the same source gives the same
    bytes. ``pip install --no-index --no-deps`` installs it.
    """
    dist = metadata.distribution("stead")
    version = dist.version
    if not _VERSION_RE.fullmatch(version):
        raise ValidationError(f"the installed stead has an unusable version {version!r}")
    package = Path(__file__).resolve().parent
    tag = f"stead-{version.replace('-', '_')}"
    info = f"{tag}.dist-info"
    entries: list[tuple[str, bytes]] = []
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package.parent)
        if path.is_dir() or "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo"):
            continue
        entries.append((rel.as_posix(), path.read_bytes()))
    meta_text = dist.read_text("METADATA")
    if not meta_text:
        raise IntegrityError("the installed stead has no METADATA", hint="reinstall it: pip install -e .")
    entries.append((f"{info}/METADATA", meta_text.encode()))
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
        entries.append((f"{info}/entry_points.txt", entry_points.encode()))
    wheel_meta = "Wheel-Version: 1.0\nGenerator: stead build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    entries.append((f"{info}/WHEEL", wheel_meta.encode()))
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in entries:
        writer.writerow([name, _record_hash(data), len(data)])
    writer.writerow([f"{info}/RECORD", "", ""])
    entries.append((f"{info}/RECORD", record.getvalue().encode()))
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{tag}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            item = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            item.external_attr = 0o644 << 16
            item.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(item, data)
    return target


# ------------------------------------------------------------------------------------------------ the model folder


def _write_model(store: SqlStore, version: ModelVersion, dest: Path, extra: Mapping[str, Any]) -> None:
    from stead.store.artifacts import safe_name

    files = dest / "files"
    files.mkdir(parents=True, exist_ok=True)
    for name in version.manifest:
        if safe_name(name) != name or any(c in name for c in "\n\r\\"):
            raise ValidationError(f"model file name {name!r} cannot be baked into an image")
    for name, digest in sorted(version.manifest.items()):
        target = files / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            store.artifacts.copy_to(digest, target, name=name)
    verify_model_dir(dest, version.manifest)
    (dest / "manifest.json").write_text(json.dumps(dict(sorted(version.manifest.items())), indent=2) + "\n")
    sums = "".join(f"{digest}  {name}\n" for name, digest in sorted(version.manifest.items()))
    (dest / "SHA256SUMS").write_text(sums)
    record = version.model_dump(mode="json")
    record.update(extra)
    (dest / "metadata.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def verify_model_dir(folder: str | os.PathLike[str], manifest: Mapping[str, str] | None = None) -> dict[str, str]:
    """Check ``folder/files`` against ``manifest`` (default: ``folder/manifest.json``): every file present with
    its sha256 and no file more. Returns the manifest; IntegrityError names the first problem."""
    from stead.flavors import folder_manifest

    root = Path(folder)
    if manifest is None:
        try:
            manifest = json.loads((root / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            raise IntegrityError(f"{root}/manifest.json cannot be read: {exc}") from None
    assert manifest is not None
    actual = folder_manifest(root / "files")
    for name, digest in sorted(manifest.items()):
        if name not in actual:
            raise IntegrityError(f"baked model file {name!r} is missing from {root}/files")
        if actual[name] != digest:
            raise IntegrityError(f"baked model file {name!r} has sha256 {actual[name]}, the manifest says {digest}")
    extra = sorted(set(actual) - set(manifest))
    if extra:
        raise IntegrityError(f"{root}/files holds {extra[0]!r}, which the manifest does not list")
    return dict(manifest)


# ------------------------------------------------------------------------------------------------ Dockerfiles

_HEALTHCHECK = (
    "import sys, urllib.request; "
    f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{PORT}/v2/health/ready', timeout=2).status == 200 else 1)"
)


def _user_lines(extra_dirs: Sequence[str]) -> list[str]:
    dirs = " ".join(extra_dirs)
    return [
        f"RUN groupadd --system --gid {UID} stead \\",
        f" && useradd --system --uid {UID} --gid stead --home-dir /app --no-create-home \\",
        "    --shell /usr/sbin/nologin stead \\",
        f" && mkdir -p {dirs} \\",
        f" && chown {UID}:{UID} {dirs}",
    ]


def _dockerfile(
    purpose: Purpose,
    python: str,
    wheel: str,
    name: str,
    version: int,
    stead_version: str,
    manifest_hash: str,
) -> str:
    for value, what in ((name, "model name"), (wheel, "wheel file name"), (stead_version, "stead version")):
        _plain(value, what)
    lines = [
        f"# Written by stead build (stead {stead_version}) for {name}/{version} ({purpose}); see README.md.",
        "# Regenerate it with stead build rather than editing it.",
        f"FROM python:{python}-slim-{BASE_DEBIAN}",
        f'LABEL org.opencontainers.image.title="stead-{name}" \\',
        f'      org.opencontainers.image.version="{version}" \\',
        f'      io.stead.model="{name}" io.stead.version="{version}" io.stead.purpose="{purpose}" \\',
        f'      io.stead.manifest-sha256="{manifest_hash}"',
        "ENV PYTHONDONTWRITEBYTECODE=1 \\",
        "    PYTHONUNBUFFERED=1 \\",
        "    PIP_NO_CACHE_DIR=1 \\",
        "    PIP_DISABLE_PIP_VERSION_CHECK=1",
    ]
    if purpose == "serve":
        lines += _user_lines(["/app/.stead"])
    else:
        lines += _user_lines(["/app/project/.stead"])
    lines += [
        "WORKDIR /app",
        "COPY --chown=root:root requirements.lock /app/requirements.lock",
        "RUN pip install --no-deps --requirement /app/requirements.lock",
        "COPY --chown=root:root wheels/ /app/wheels/",
        f"RUN pip install --no-index --no-deps /app/wheels/{wheel}" + (" && pip check" if purpose == "serve" else ""),
        "COPY --chown=root:root model/ /app/model/",
    ]
    if purpose == "serve":
        lines += [
            "# Every baked file is checked against the version's sha256 manifest at build time.",
            "RUN cd /app/model/files && sha256sum --check --strict --quiet ../SHA256SUMS \\",
            " && python -m stead.export verify /app/model",
            f"USER {UID}:{UID}",
            "ENV STEAD_BAKED_MODEL=/app/model \\",
            "    STEAD_PREDLOG_DIR=/app/.stead/predlog",
            f"EXPOSE {PORT}",
            "HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \\",
            f"  CMD {json.dumps(['python', '-c', _HEALTHCHECK])}",
            'ENTRYPOINT ["stead", "serve"]',
            f'CMD ["--host", "0.0.0.0", "--port", "{PORT}", "--no-controller"]',
        ]
    else:
        lines += [
            "COPY --chown=root:root project/ /app/project/",
            "WORKDIR /app/project",
            f"USER {UID}:{UID}",
            "HEALTHCHECK NONE",
            f'ENTRYPOINT ["stead", "run", "{name}"]',
            "CMD []",
        ]
    return "\n".join(lines) + "\n"


def _dockerignore(purpose: Purpose) -> str:
    keep = ["Dockerfile", "requirements.lock", "wheels/", "model/"] + (["project/"] if purpose == "train" else [])
    return (
        "# Send the engine only what the Dockerfile copies (k8s/ and README.md stay out).\n*\n"
        + "".join(f"!{item}\n" for item in keep)
        + "**/__pycache__\n**/*.pyc\n**/.git\n**/.stead\n"
    )


# ------------------------------------------------------------------------------------------------ Kubernetes


def _labels(app: str, name: str, version: int) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/part-of": "stead",
        "app.kubernetes.io/version": str(version),
        "stead.io/model": k8s_name(name),
    }


_SECRET_KEYS = ("STEAD_URI", "STEAD_TOKENS", "STEAD_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def _env(app: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    env = [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": f"{app}-secrets", "key": key, "optional": True}}}
        for key in _SECRET_KEYS
    ]
    env_from = [{"configMapRef": {"name": f"{app}-config"}}]
    return env, env_from


def _probes() -> dict[str, Any]:
    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": PORT},
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": failures,
        }

    return {
        "readinessProbe": probe("/v2/health/ready", 5, 3),
        "livenessProbe": probe("/v2/health/live", 10, 3),
        "startupProbe": probe("/v2/health/live", 2, 60),
    }


def _container(app: str, image: str, purpose: Purpose) -> dict[str, Any]:
    env, env_from = _env(app)
    container: dict[str, Any] = {
        "name": "kserve-container" if purpose == "serve" else "train",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "env": env,
        "envFrom": env_from,
        "resources": {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"} if purpose == "serve" else {"cpu": "2", "memory": "4Gi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "state", "mountPath": "/app/.stead" if purpose == "serve" else "/app/project/.stead"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if purpose == "serve":
        container["ports"] = [{"name": "http", "containerPort": PORT, "protocol": "TCP"}]
        container.update(_probes())
    return container


_VOLUMES = [{"name": "state", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]


def k8s_manifests(
    version: ModelVersion, deployment: str, image: str, purpose: Purpose, canary_percent: int | None
) -> dict[str, dict[str, Any]]:
    """``{file name: manifest}`` for ``k8s/``; see the module docstring."""
    if not _IMAGE_RE.fullmatch(image):
        raise ValidationError(f"image {image!r} is not a valid image reference", hint="e.g. registry.local/churn:3")
    app = f"stead-{k8s_name(deployment)}" if purpose == "serve" else f"stead-train-{k8s_name(version.name)}"
    labels = _labels(app, version.name, version.version)
    selector = {"app.kubernetes.io/name": app}
    config: dict[str, str] = {
        "STEAD_PREDLOG_DIR": "/app/.stead/predlog",
        "STEAD_ARTIFACTS": f"{PLACEHOLDER}: s3://BUCKET/stead (only with a postgresql STEAD_URI; else delete)",
        "AWS_ENDPOINT_URL": f"{PLACEHOLDER}: https://s3.REGION.amazonaws.com (or your S3-compatible endpoint)",
    }
    out: dict[str, dict[str, Any]] = {
        "configmap.yaml": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{app}-config", "labels": labels},
            "data": config,
        },
        "secret.yaml": {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{app}-secrets", "labels": labels},
            "type": "Opaque",
            "stringData": {
                "STEAD_URI": f"{PLACEHOLDER}: postgresql://USER:PASSWORD@HOST/stead (delete: serve the baked model)",
                "STEAD_TOKENS": f"{PLACEHOLDER}: TOKEN:admin,TOKEN2:read",
                "STEAD_TOKEN": f"{PLACEHOLDER}: TOKEN (what this pod sends to other stead servers)",
                "AWS_ACCESS_KEY_ID": f"{PLACEHOLDER}",
                "AWS_SECRET_ACCESS_KEY": f"{PLACEHOLDER}",
            },
        },
    }
    container = _container(app, image, purpose)
    if purpose == "train":
        out["job.yaml"] = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": app, "labels": labels},
            "spec": {
                "backoffLimit": 0,
                "ttlSecondsAfterFinished": 86400,
                "template": {
                    "metadata": {"labels": {**labels, **selector}},
                    "spec": {"restartPolicy": "Never", "containers": [container], "volumes": _VOLUMES},
                },
            },
        }
        return out
    pod_spec = {
        "terminationGracePeriodSeconds": 30,
        "securityContext": {"runAsNonRoot": True, "fsGroup": UID},
        "containers": [container],
        "volumes": _VOLUMES,
    }
    out["deployment.yaml"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": {**labels, **selector}}, "spec": pod_spec},
        },
    }
    out["service.yaml"] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": app, "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    out["hpa.yaml"] = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": app, "labels": labels},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }
    predictor: dict[str, Any] = {
        "minReplicas": 2,
        "maxReplicas": 10,
        "scaleMetric": "cpu",
        "scaleTarget": 70,
        "securityContext": pod_spec["securityContext"],
        "containers": [container],
        "volumes": _VOLUMES,
    }
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = canary_percent
    out["inferenceservice.yaml"] = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": app,
            "labels": labels,
            "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"},
        },
        "spec": {"predictor": predictor},
    }
    return out


# ------------------------------------------------------------------------------------------------ the context


@dataclass
class BuildResult:
    """What ``build_context`` wrote."""

    out: Path
    purpose: Purpose
    name: str
    version: int
    deployment: str
    python: str
    requirements: list[str]
    wheel: Path
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "for": self.purpose,
            "model": self.name,
            "version": self.version,
            "deployment": self.deployment,
            "python": self.python,
            "requirements": len(self.requirements),
            "wheel": self.wheel.name,
            "files": self.files,
            "notes": self.notes,
        }


def _where_it_serves(store: SqlStore, version: ModelVersion) -> tuple[str | None, int | None]:
    """The deployment that routes to ``version`` (a primary first), and its canary share when it is the canary."""
    found: tuple[str | None, int | None] = (None, None)
    for d in store.list_deployments():
        for route in d.routes:
            if route.model == version.name and route.version == version.version:
                if route.kind == "canary":
                    return d.name, round(route.weight * 100)
                if route.kind == "primary" and found[0] is None:
                    found = (d.name, None)
    return found


def _copy_project(root: Path, dest: Path, skip: Path) -> None:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in _SKIP_DIRS for part in rel.parts) or path.suffix == ".pyc":
            continue
        if path.resolve() == skip or skip in path.resolve().parents:
            continue
        if path.is_symlink():
            continue
        target = dest / rel
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def _readme(result: BuildResult, image: str, k8s: bool) -> str:
    tag = image
    if result.purpose == "serve":
        run = (
            f"docker build -t {tag} {result.out}\n"
            f"docker run --rm -p {PORT}:{PORT} {tag}          # serves the baked {result.name} alone\n"
            f"curl -s localhost:{PORT}/v2/health/ready\n"
            f"curl -s -X POST localhost:{PORT}/v1/deployments/{result.deployment}/predict \\\n"
            "     -H 'content-type: application/json' -d '{\"instances\": [{...}]}'\n\n"
            "# or join a shared store (the baked files are then not used):\n"
            f"docker run --rm -p {PORT}:{PORT} -e STEAD_URI=postgresql://USER:PASS@HOST/stead \\\n"
            f"     -e STEAD_ARTIFACTS=s3://BUCKET/stead -e STEAD_TOKENS=TOKEN:admin {tag}\n"
        )
        how = (
            f"On start, `stead serve` sees `STEAD_BAKED_MODEL=/app/model`. With `STEAD_URI` unset it creates an "
            f"embedded store in `/app/.stead`, checks and registers the baked files as version 1 of "
            f"`{result.name}` (its origin, `{result.name}/{result.version}`, is kept as the version's source) and "
            "routes "
            f"deployment `{result.deployment}` to it. With `STEAD_URI` set it joins that store and serves its "
            "deployments. With no `STEAD_TOKENS` it makes up an admin token nobody knows: predictions and reads "
            "are open, writes are closed.\n"
        )
    else:
        run = (
            f"docker build -t {tag} {result.out}\n"
            "docker run --rm -e STEAD_URI=postgresql://USER:PASS@HOST/stead \\\n"
            f"     -e STEAD_ARTIFACTS=s3://BUCKET/stead {tag}\n"
        )
        how = (
            f"The image holds the project (`project/`) and runs `stead run {result.name}` in it: the same pipeline, "
            "gates and registration as on the machine that recorded the run, in its recorded environment. Point "
            "`STEAD_URI` at the shared store, or the run lands in the container's own `.stead` and is lost.\n"
        )
    notes = "".join(f"- {n}\n" for n in result.notes) or "- none\n"
    k8s_text = (
        "\n## Kubernetes\n\nFill in the placeholders of `k8s/secret.yaml` and `k8s/configmap.yaml` (or delete those "
        "keys), then:\n\n```sh\nkubectl apply -f k8s/configmap.yaml -f k8s/secret.yaml\n"
        + (
            "kubectl apply -f k8s/deployment.yaml -f k8s/service.yaml -f k8s/hpa.yaml\n"
            "# or, with KServe installed, instead of the three above:\nkubectl apply -f k8s/inferenceservice.yaml\n"
            if result.purpose == "serve"
            else "kubectl apply -f k8s/job.yaml\n"
        )
        + "```\n"
        if k8s
        else ""
    )
    return (
        f"# Build context for {result.name}/{result.version} ({result.purpose})\n\n"
        f"Written by `stead build`. Python {result.python}, {len(result.requirements)} pinned packages "
        f"(`requirements.lock`), stead from `wheels/{result.wheel.name}`.\n\n{how}\n"
        f"## Build and run\n\n```sh\n{run}```\n\n"
        "The build checks every model file against its sha256 (`model/SHA256SUMS`, `model/manifest.json`); a "
        "changed file fails the build.\n"
        f"{k8s_text}\n## Notes\n\n{notes}"
    )


def build_context(
    store: SqlStore,
    ref: str,
    out: str | os.PathLike[str],
    purpose: str = "serve",
    *,
    k8s: bool = False,
    deployment: str | None = None,
    image: str | None = None,
    project_file: str | os.PathLike[str] | None = None,
) -> BuildResult:
    """Write the build context for model ``ref`` into ``out``; see the module docstring."""
    if purpose not in ("serve", "train"):
        raise ValidationError(f"--for must be serve or train, got {purpose!r}")
    kind: Purpose = "serve" if purpose == "serve" else "train"
    parsed = Ref.parse(ref)
    if parsed.kind not in ("version", "alias"):
        raise ValidationError(f"{ref!r} is not a model reference", hint="use NAME@ALIAS or NAME/VERSION")
    version = store.resolve_version(parsed)
    name = check_name(version.name, "model name")
    where, canary = _where_it_serves(store, version)
    deployment = check_name(deployment or where or name, "deployment name")
    env: dict[str, Any] = {}
    if version.run_id:
        env = dict(store.get_run(version.run_id).env)
    python_info = env.get("python") or {}
    python = _python_version(str(python_info.get("version") or platform.python_version()))
    machine = str((env.get("platform") or {}).get("machine") or platform.machine() or "x86_64")
    recorded = _recorded(env.get("packages") or [])
    notes: list[str] = []
    if not version.run_id:
        notes.append("the version has no run: pins are this machine's installed versions")
    if python.split(".")[:2] != [str(v) for v in sys.version_info[:2]]:
        notes.append(f"the run recorded Python {python}; this machine runs {platform.python_version()}")
    target = Path(out)
    if target.exists() and any(target.iterdir()):
        if not (target / "Dockerfile").is_file():
            raise ValidationError(
                f"{target} exists and is not a stead build context", hint="choose an empty folder with --out"
            )
        shutil.rmtree(target)
    target.mkdir(parents=True, exist_ok=True)
    project_root: Path | None = None
    if kind == "serve":
        pins, more = serving_requirements(version.requirements, recorded, python, machine)
        notes += more
    else:
        if project_file is None:
            project_file = Path("stead.yaml")
        pf = Path(project_file)
        if not pf.is_file():
            raise ConfigError(f"{pf}: no such file: --for train copies the project", hint="run it beside stead.yaml")
        from stead.project import load_project

        project = load_project(pf)
        project.model(name)  # the model must be declared there
        project_root = pf.resolve().parent
        if not recorded:
            raise ValidationError(f"{name}/{version.version}: its run recorded no packages to reproduce")
        pins = [_pin(f"{n}=={v}") for n, v in sorted(recorded.items()) if n != "stead"]
    wheel = stead_wheel(target / "wheels")
    stead_version = metadata.version("stead")
    manifest_hash = hashlib.sha256(json.dumps(version.manifest, sort_keys=True).encode()).hexdigest()
    origin = {
        "stead_build": {
            "for": kind,
            "deployment": deployment,
            "canary_percent": canary,
            "python": python,
            "stead": stead_version,
        }
    }
    if kind == "serve":
        _write_model(store, version, target / "model", origin)
    else:
        (target / "model").mkdir()
        record = version.model_dump(mode="json")
        record.update(origin)
        (target / "model" / "metadata.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        assert project_root is not None
        _copy_project(project_root, target / "project", target.resolve())
    header = f"# requirements.lock: written by stead build for {name}/{version.version} ({kind}), Python {python}\n" + (
        f"# pinned to the versions run {version.run_id} recorded\n" if version.run_id else ""
    )
    (target / "requirements.lock").write_text(header + "".join(f"{p}\n" for p in pins))
    (target / "Dockerfile").write_text(
        _dockerfile(kind, python, wheel.name, name, version.version, stead_version, manifest_hash)
    )
    (target / ".dockerignore").write_text(_dockerignore(kind))
    image = image or f"stead-{k8s_name(name)}:{version.version}"
    result = BuildResult(target, kind, name, version.version, deployment, python, pins, wheel, notes=notes)
    if k8s:
        import yaml

        folder = target / "k8s"
        folder.mkdir()
        for file, doc in k8s_manifests(version, deployment, image, kind, canary if kind == "serve" else None).items():
            (folder / file).write_text(yaml.safe_dump(doc, sort_keys=False))
    (target / "README.md").write_text(_readme(result, image, k8s))
    result.files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    return result


# ------------------------------------------------------------------------------------------------ the image at start


def _refuse_placeholders(environ: Mapping[str, str]) -> None:
    for key, value in environ.items():
        if key.startswith(("STEAD_", "AWS_")) and PLACEHOLDER in value:
            raise ConfigError(
                f"{key} is still the placeholder of k8s/secret.yaml or k8s/configmap.yaml",
                hint=f"set {key} to a real value, or delete the key",
            )


def boot_baked(folder: str | os.PathLike[str], environ: MutableMapping[str, str] | None = None) -> str | None:
    """Prepare ``stead serve`` in an image built by ``stead build``; see the module docstring.

    Returns the deployment that serves the baked model, or None when ``STEAD_URI`` names a shared store.
    ``environ`` (default ``os.environ``) gets ``STEAD_URI`` and, with no tokens configured, ``STEAD_TOKENS``.
    """
    env = os.environ if environ is None else environ
    _refuse_placeholders(env)
    if env.get("STEAD_URI"):
        return None
    root = Path(folder)
    meta = json.loads((root / "metadata.json").read_text())
    manifest = verify_model_dir(root)
    name = check_name(meta["name"], "model name")
    deployment = check_name(meta.get("stead_build", {}).get("deployment") or name, "deployment name")
    store_dir = Path(env.get("STEAD_BAKED_STORE") or root.parent / ".stead")
    env["STEAD_URI"] = str(store_dir)
    if not env.get("STEAD_TOKENS") and not env.get("STEAD_TOKENS_FILE"):
        env["STEAD_TOKENS"] = f"{secrets.token_urlsafe(32)}:admin"
    from stead.settings import Settings
    from stead.store import open_store

    store = open_store(Settings.from_env(env))
    try:
        source = f"stead build of {name}/{meta['version']}"
        existing = [v for v in _versions(store, name) if v.manifest == manifest]
        if existing:
            version = existing[0]
        else:
            digests = store.artifacts.put_tree(root / "files")
            if digests != manifest:  # pragma: no cover - verified just above
                raise IntegrityError("the baked files changed while they were stored")
            version = store.create_model_version(
                name,
                str(meta["flavor"]),
                manifest,
                signature=dict(meta.get("signature") or {}),
                requirements=list(meta.get("requirements") or []),
                allow_pickle=bool(meta.get("allow_pickle")),
                metrics={k: float(v) for k, v in (meta.get("metrics") or {}).items()},
                source=source,
                actor="stead-image",
            )
        try:
            current = store.get_deployment(deployment, history=0)
        except NotFoundError:
            current = None
        routes = [{"model": name, "version": version.version, "kind": "primary", "weight": 1.0}]
        if current is None or [r.model_dump() for r in current.routes] != routes:
            store.write_deployment(
                deployment,
                routes,
                None if current is None else current.revision,
                "stead-image",
                f"the model baked into this image ({source})",
                "deploy",
            )
    finally:
        store.close()
    return deployment


def _versions(store: SqlStore, name: str) -> list[ModelVersion]:
    try:
        return list(store.list_model_versions(name))
    except NotFoundError:
        return []


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m stead.export verify FOLDER``: the build-time check of a baked model folder."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "verify":
        print("usage: python -m stead.export verify FOLDER", file=sys.stderr)
        return 2
    try:
        manifest = verify_model_dir(args[1])
    except IntegrityError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(f"{len(manifest)} files match their sha256")
    return 0


if __name__ == "__main__":
    sys.exit(main())
