"""The content-addressed artifact store (layer: store; the only code that writes blob bytes).

Blobs live at ``<root>/sha256/<2 hex>/<62 hex>``, named by the sha256 of their bytes, so the same
content is stored once and every read can be checked against its name. The root is a local folder
(plain ``os`` calls, fsync'd) or any fsspec URL (``s3://bucket/prefix``, ``memory://x`` in tests).

Durability contract: ``put_*`` returns the digest only once the bytes are durable (written to a
temporary file under ``<root>/tmp``, flushed, fsync'd, ``os.replace``d into place and the directory
fsync'd). Callers record the digest in a metadata row only after ``put_*`` returns, so no row ever
points at bytes that are not there. A writer killed halfway leaves a stray file in ``<root>/tmp``,
which is never read as a blob (see ``sweep_temp``).

``safe_name`` and ``resolve_under`` guard every user-supplied artifact name before it becomes a path.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import stat
import time
import unicodedata
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, BinaryIO

from stead.errors import IntegrityError, NotFoundError, ValidationError

__all__ = ["ArtifactStore", "BlobStore", "resolve_under", "safe_name"]

CHUNK = 1024 * 1024
MAX_NAME_LENGTH = 1024
_NAME_HINT = "use a relative path like 'plots/roc.png'"
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
_PERCENT_RE = re.compile(r"%[0-9A-Fa-f]{2}")
_DRIVE_RE = re.compile(r"[A-Za-z]:")
_TMP_PREFIX = ".tmp-"
# fsspec backends where one write is atomic (the object appears only once complete): write in place.
_OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory"})


# -- names ------------------------------------------------------------------------------------------


def _bad_name(name: str, rule: str) -> ValidationError:
    shown = name if len(name) <= 80 else name[:77] + "..."
    return ValidationError(
        f"artifact name {shown!r} is not allowed: {rule}",
        hint=_NAME_HINT,
        details={"name": shown, "rule": rule},
    )


def safe_name(name: str) -> str:
    """Validate a user-supplied relative artifact name and return its normalized (NFC, posix) form.

    Raises ``ValidationError`` naming the name, the broken rule and the fix.
    """
    if not isinstance(name, str):
        raise ValidationError(f"artifact name must be a string, not {type(name).__name__}", hint=_NAME_HINT)
    if not name:
        raise _bad_name(name, "it is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise _bad_name(name, f"it is {len(name)} characters long, the limit is {MAX_NAME_LENGTH}")
    name = unicodedata.normalize("NFC", name)
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            raise _bad_name(name, f"it contains the control character {ch!r}")
    if "\\" in name:
        raise _bad_name(name, "it contains a backslash; separate folders with '/'")
    if name.startswith("/") or _DRIVE_RE.match(name):
        raise _bad_name(name, "it is an absolute path")
    if name.startswith("~"):
        raise _bad_name(name, "it starts with '~'")
    encoded = _PERCENT_RE.search(name)
    if encoded:
        raise _bad_name(name, f"it contains the percent-encoded sequence {encoded.group()!r}")
    for segment in name.split("/"):
        if segment == "":
            raise _bad_name(name, "it has an empty path segment ('//' or a trailing '/')")
        if segment == ".":
            raise _bad_name(name, "it has a '.' path segment")
        if segment == "..":
            raise _bad_name(name, "it has a '..' path segment")
    return name


def _inside(path: str, root: str) -> bool:
    try:
        return path != root and os.path.commonpath([path, root]) == root
    except ValueError:  # different drives on Windows
        return False


def resolve_under(root: Path, name: str) -> Path:
    """Return ``root/name`` with symlinks resolved, refusing a name that escapes ``root``."""
    clean = safe_name(name)
    real_root = os.path.realpath(root)
    resolved = os.path.realpath(os.path.join(real_root, *clean.split("/")))
    if not _inside(resolved, real_root):
        raise _bad_name(clean, f"it resolves to {resolved!r}, outside {real_root!r} (through a symlink)")
    return Path(resolved)


# -- helpers ----------------------------------------------------------------------------------------


def _check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise ValidationError(
            f"{digest!r} is not a sha256 digest", hint="a digest is 64 lowercase hex characters, as put_* returns"
        )
    return digest


def _label(digest: str, name: str | None) -> str:
    return f"artifact {name!r} (sha256 {digest})" if name else f"blob sha256 {digest}"


def _corrupted(digest: str, actual: str, name: str | None) -> IntegrityError:
    return IntegrityError(
        f"{_label(digest, name)} is corrupted: its content hashes to {actual}",
        hint="the stored bytes were damaged; restore the blob from a backup or log the artifact again",
        details={"digest": digest, "actual": actual, "name": name},
    )


def _fsync_dir(path: str) -> None:
    if os.name == "nt":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs(path: str) -> None:
    """Create ``path`` and its missing parents, fsyncing each parent that gained an entry."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        _makedirs(parent)
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    _fsync_dir(parent or ".")


def _chunks(fileobj: IO[bytes]) -> Iterator[bytes]:
    while chunk := fileobj.read(CHUNK):
        yield chunk


def _write_temp(directory: str, chunks: Iterator[bytes]) -> tuple[str, str, int]:
    """Write ``chunks`` to a fresh temp file in ``directory``; return (temp path, sha256 hex, size), fsync'd."""
    _makedirs(directory)
    tmp = os.path.join(directory, f"{_TMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}")
    digest = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "xb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return tmp, digest.hexdigest(), size


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class _VerifyingReader(io.RawIOBase):
    """A read-only stream that hashes what passes through and raises IntegrityError at the end on a mismatch."""

    def __init__(self, raw: IO[bytes], digest: str, name: str | None) -> None:
        self._raw = raw
        self._digest = digest
        self._name = name
        self._hash = hashlib.sha256()
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._raw.read(len(view))
        n = len(data)
        view[:n] = data
        if n:
            self._hash.update(data)
        elif not self._checked:
            self._checked = True
            actual = self._hash.hexdigest()
            if actual != self._digest:
                raise _corrupted(self._digest, actual, self._name)
        return n

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


# -- the store --------------------------------------------------------------------------------------


class BlobStore:
    """The blob API on top of a few primitives, shared by ``ArtifactStore`` and the HTTP client's blobs.

    Subclasses provide ``put_bytes``, ``put_stream``, ``exists``, ``size``, ``local_path`` and ``_open_raw``
    (a raw, unverified stream of a blob); reading (``open``, ``get_bytes``, ``verify``, ``copy_to``), files
    and trees (``put_file``, ``put_tree``, ``materialize``, with their name checks) are built on them here.
    """

    root: str

    @property
    def is_local(self) -> bool:
        """True when blobs are plain files on this machine (``local_path`` works)."""
        return False

    # primitives

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; return its sha256 hex digest. Storing existing content is a no-op."""
        raise NotImplementedError

    def put_stream(self, fileobj: IO[bytes]) -> str:
        """Store everything read from ``fileobj`` (read in chunks until EOF); return its digest."""
        raise NotImplementedError

    def exists(self, digest: str) -> bool:
        """True when the blob ``digest`` is stored."""
        raise NotImplementedError

    def size(self, digest: str) -> int:
        """The blob's size in bytes; NotFoundError when it is missing."""
        raise NotImplementedError

    def local_path(self, digest: str) -> Path | None:
        """The blob's file, to read in place (DuckDB, pyarrow); None when blobs are not local. Not verified."""
        raise NotImplementedError

    def _open_raw(self, digest: str, name: str | None) -> IO[bytes]:
        raise NotImplementedError

    # built on the primitives

    def put_file(self, path: str | os.PathLike[str]) -> str:
        """Store the file at ``path`` in chunks (never whole in memory); return its digest."""
        with open(path, "rb") as source:
            return self.put_stream(source)

    def open(self, digest: str, *, name: str | None = None) -> BinaryIO:
        """A binary stream of the blob; reading it to the end raises IntegrityError if it does not match ``digest``."""
        return io.BufferedReader(_VerifyingReader(self._open_raw(digest, name), digest, name), CHUNK)

    def get_bytes(self, digest: str, *, name: str | None = None) -> bytes:
        """The blob's bytes, verified against ``digest`` (IntegrityError names ``name`` when given)."""
        with self._open_raw(digest, name) as raw:
            data = raw.read()
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise _corrupted(digest, actual, name)
        return data

    def verify(self, digest: str, *, name: str | None = None) -> None:
        """Re-hash the stored blob; IntegrityError when it was damaged, NotFoundError when missing."""
        with self.open(digest, name=name) as stream:
            while stream.read(CHUNK):
                pass

    def copy_to(self, digest: str, dest_path: str | os.PathLike[str], *, name: str | None = None) -> Path:
        """Write the blob to ``dest_path`` atomically, verified: a corrupted blob never lands there."""
        dest = os.path.abspath(dest_path)
        with self._open_raw(digest, name) as raw:
            tmp, actual, _ = _write_temp(os.path.dirname(dest), _chunks(raw))
        try:
            if actual != digest:
                raise _corrupted(digest, actual, name)
            os.replace(tmp, dest)
            _fsync_dir(os.path.dirname(dest))
        finally:
            _unlink_quietly(tmp)
        return Path(dest)

    # trees

    def put_tree(self, folder: str | os.PathLike[str]) -> dict[str, str]:
        """Store every file under ``folder``; return the sorted manifest ``{relative/posix/path: digest}``.

        Symlinks are followed only when they stay inside ``folder``; special files are refused.
        """
        top = os.path.realpath(folder)
        if not os.path.isdir(top):
            raise NotFoundError(f"{os.fspath(folder)!r} is not a folder", hint="pass the folder to log")
        files: dict[str, str] = {}
        self._collect(top, top, "", (top,), files)
        return {rel: self.put_file(files[rel]) for rel in sorted(files)}

    def _collect(self, top: str, here: str, prefix: str, ancestors: tuple[str, ...], out: dict[str, str]) -> None:
        with os.scandir(here) as entries:
            listing = sorted(entries, key=lambda e: e.name)
        for entry in listing:
            rel = safe_name(prefix + entry.name)
            path = entry.path
            if entry.is_symlink():
                path = os.path.realpath(entry.path)
                if path in ancestors:
                    raise _bad_name(rel, "it is a symlink loop")
                if not _inside(path, top):
                    raise _bad_name(rel, f"it is a symlink to {path!r}, outside the folder {top!r}")
            try:
                mode = os.stat(path).st_mode
            except FileNotFoundError:
                raise _bad_name(rel, "it is a broken symlink") from None
            if stat.S_ISDIR(mode):
                self._collect(top, path, rel + "/", (*ancestors, path), out)
            elif stat.S_ISREG(mode):
                out[rel] = path
            else:
                raise _bad_name(rel, "it is not a regular file (a socket, pipe or device)")

    def materialize(self, manifest: Mapping[str, str], dest_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """Write each ``{name: digest}`` under ``dest_dir``, verified; refuse any name that escapes it.

        Every name and digest is checked before anything is written. Returns ``{name: written path}``.
        """
        dest = os.path.abspath(dest_dir)
        names = {safe_name(name): _check_digest(digest) for name, digest in manifest.items()}
        parents = {name.rsplit("/", i)[0] for name in names for i in range(1, name.count("/") + 1)}
        clash = sorted(parents.intersection(names))
        if clash:
            raise _bad_name(clash[0], "it is both a file and a folder in the manifest")
        for name in names:
            resolve_under(Path(dest), name)
        written: dict[str, Path] = {}
        for name, digest in sorted(names.items()):
            folder, _, base = name.rpartition("/")
            parent = str(resolve_under(Path(dest), folder)) if folder else os.path.realpath(dest)
            _makedirs(parent)
            written[name] = self.copy_to(digest, os.path.join(parent, base), name=name)
        return written


class ArtifactStore(BlobStore):
    """Content-addressed blobs under a local folder or an fsspec URL."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)
        self._fs: Any = None
        self._base: str
        self._atomic_writes = False
        if "://" in self.root or "::" in self.root:
            from fsspec.core import url_to_fs

            fs, base = url_to_fs(self.root)
            protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
            if "file" in protocols or "local" in protocols:
                self._base = os.path.abspath(base)
            else:
                self._fs = fs
                self._base = base.rstrip("/")
                self._atomic_writes = bool(_OBJECT_STORES.intersection(protocols))
        else:
            self._base = os.path.abspath(self.root)

    def __repr__(self) -> str:
        return f"ArtifactStore({self.root!r})"

    @property
    def is_local(self) -> bool:
        """True when blobs are plain files on this machine (``local_path`` works)."""
        return self._fs is None

    # paths

    def _join(self, *parts: str) -> str:
        return os.path.join(self._base, *parts) if self._fs is None else "/".join((self._base, *parts))

    def _blob(self, digest: str) -> str:
        _check_digest(digest)
        return self._join("sha256", digest[:2], digest[2:])

    # writes

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; return its sha256 hex digest. Storing existing content is a no-op."""
        digest = hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            return digest
        if self._fs is None:
            self._commit_local(iter((bytes(data),)), digest)
        else:
            self._write_remote(self._blob(digest), io.BytesIO(data))
        return digest

    def put_stream(self, fileobj: IO[bytes]) -> str:
        """Store everything read from ``fileobj`` (read in chunks until EOF); return its digest."""
        if self._fs is None:
            return self._commit_local(_chunks(fileobj), None)
        # Object stores: spool locally while hashing, so the blob is written once under its final name.
        import tempfile

        with tempfile.TemporaryFile() as spool:
            digest = hashlib.sha256()
            for chunk in _chunks(fileobj):
                digest.update(chunk)
                spool.write(chunk)
            hexdigest = digest.hexdigest()
            if not self.exists(hexdigest):
                spool.seek(0)
                self._write_remote(self._blob(hexdigest), spool)
        return hexdigest

    def _commit_local(self, chunks: Iterator[bytes], expected: str | None) -> str:
        tmp, digest, size = _write_temp(self._join("tmp"), chunks)
        try:
            if expected is not None and digest != expected:  # pragma: no cover - would mean a broken hashlib
                raise _corrupted(expected, digest, None)
            final = self._blob(digest)
            try:
                if os.path.getsize(final) == size:  # same content already there (dedup)
                    return digest
            except OSError:
                pass
            shard = os.path.dirname(final)
            _makedirs(shard)
            try:
                os.replace(tmp, final)  # atomic; concurrent writers of the same content all land the same bytes
            except PermissionError:  # Windows: another process holds the blob open, so it exists
                if not os.path.exists(final):
                    raise
                return digest
            _fsync_dir(shard)
            return digest
        finally:
            _unlink_quietly(tmp)

    def _write_remote(self, final: str, source: IO[bytes]) -> None:
        fs = self._fs
        target = final if self._atomic_writes else f"{self._join('tmp')}/{_TMP_PREFIX}{secrets.token_hex(8)}"
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(target, "wb") as out:
            for chunk in _chunks(source):
                out.write(chunk)
        if target != final:
            fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            fs.mv(target, final)

    # reads

    def exists(self, digest: str) -> bool:
        """True when the blob ``digest`` is stored."""
        path = self._blob(digest)
        return os.path.isfile(path) if self._fs is None else bool(self._fs.isfile(path))

    def size(self, digest: str) -> int:
        """The blob's size in bytes; NotFoundError when it is missing."""
        path = self._blob(digest)
        try:
            return os.path.getsize(path) if self._fs is None else int(self._fs.size(path))
        except FileNotFoundError:
            raise self._missing(digest, None) from None

    def local_path(self, digest: str) -> Path | None:
        """The blob's file, to read in place (DuckDB, pyarrow); None for remote roots. Not verified."""
        if self._fs is not None:
            return None
        path = self._blob(digest)
        if not os.path.isfile(path):
            raise self._missing(digest, None)
        return Path(path)

    def _missing(self, digest: str, name: str | None) -> NotFoundError:
        return NotFoundError(
            f"{_label(digest, name)} is missing from the artifact store at {self.root}",
            hint="check the store root (STEAD_ARTIFACTS); the blob may have been deleted or never uploaded",
            details={"digest": digest, "name": name},
        )

    def _open_raw(self, digest: str, name: str | None) -> IO[bytes]:
        path = self._blob(digest)
        try:
            if self._fs is None:
                return open(path, "rb", buffering=0)
            raw: IO[bytes] = self._fs.open(path, "rb")
            return raw
        except FileNotFoundError:
            raise self._missing(digest, name) from None

    # housekeeping

    def sweep_temp(self, older_than_seconds: float = 24 * 3600) -> int:
        """Delete temp files left by killed writers (local roots); return how many were removed."""
        if self._fs is not None:
            return 0
        tmpdir = self._join("tmp")
        cutoff = time.time() - older_than_seconds
        removed = 0
        try:
            entries = list(os.scandir(tmpdir))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.name.startswith(_TMP_PREFIX) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                _unlink_quietly(entry.path)
                removed += 1
        return removed
