from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import re
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from stead.errors import IntegrityError, NotFoundError, ValidationError
from stead.store.artifacts import ArtifactStore, resolve_under, safe_name

BAD_NAMES = [
    pytest.param("", id="empty"),
    pytest.param("/etc/passwd", id="absolute-posix"),
    pytest.param("C:\\x", id="absolute-windows-backslash"),
    pytest.param("C:/x", id="absolute-windows-slash"),
    pytest.param("..", id="dotdot"),
    pytest.param("../x", id="dotdot-leading"),
    pytest.param("a/../../x", id="dotdot-middle"),
    pytest.param("a/..", id="dotdot-trailing"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("..\\x", id="backslash-dotdot"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("a\nb", id="newline"),
    pytest.param("a\rb", id="carriage-return"),
    pytest.param("a\tb", id="tab"),
    pytest.param("a\x7fb", id="del"),
    pytest.param("a\x85b", id="c1-control"),
    pytest.param("a\u2028b", id="line-separator"),
    pytest.param("%2e%2e/x", id="pct-dotdot"),
    pytest.param("%2E%2E/x", id="pct-dotdot-upper"),
    pytest.param("a%2fb", id="pct-slash"),
    pytest.param("a%5cb", id="pct-backslash"),
    pytest.param("a%00b", id="pct-nul"),
    pytest.param("%252e%252e/x", id="pct-double-encoded"),
    pytest.param("~", id="tilde"),
    pytest.param("~root/x", id="tilde-user"),
    pytest.param("a//b", id="empty-segment"),
    pytest.param("a/", id="trailing-slash"),
    pytest.param("./a", id="dot-leading"),
    pytest.param("a/./b", id="dot-middle"),
    pytest.param(".", id="dot"),
    pytest.param("x" * 1025, id="too-long"),
]


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "store"))


@pytest.fixture
def memstore() -> ArtifactStore:
    return ArtifactStore(f"memory://stead-test-{uuid.uuid4().hex}/artifacts")


def blob_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "sha256").rglob("*") if p.is_file())


def snapshot(top: Path, *excluded: Path) -> dict[str, tuple[bool, int]]:
    """Every path under ``top`` (not following symlinks) with (is_dir, size), except under ``excluded``."""
    found: dict[str, tuple[bool, int]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for entry in dirnames + filenames:
            path = Path(dirpath, entry)
            if any(path == ex or ex in path.parents for ex in excluded):
                continue
            info = path.lstat()
            found[str(path)] = (path.is_dir() and not path.is_symlink(), info.st_size if path.is_file() else 0)
    return found


# -- safe_name --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["model.skops", "plots/roc.png", "a/b/c.d.e", "..hidden", "a/..b", "a~b", "100%.txt", "sp ace/é.txt"]
)
def test_safe_name_accepts_relative_names(name: str) -> None:
    assert safe_name(name) == name


def test_safe_name_normalizes_to_nfc() -> None:
    assert safe_name("cafe\u0301.txt") == "caf\u00e9.txt"


@pytest.mark.parametrize("name", BAD_NAMES)
def test_safe_name_refuses(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        safe_name(name)
    err = info.value
    assert "is not allowed:" in err.message
    assert repr(name[:20]).rstrip("'") in err.message  # names the offending name
    assert err.hint == "use a relative path like 'plots/roc.png'"
    assert err.details["rule"]


def test_safe_name_messages_name_the_rule() -> None:
    cases = {
        "../x": "'..' path segment",
        "/x": "absolute path",
        "a\\b": "backslash",
        "a%2fb": "percent-encoded sequence '%2f'",
        "a\nb": "control character '\\n'",
        "a//b": "empty path segment",
        "~x": "starts with '~'",
    }
    for name, rule in cases.items():
        with pytest.raises(ValidationError, match=re.escape(rule)):
            safe_name(name)


def test_safe_name_length_limit() -> None:
    assert safe_name("x" * 1024) == "x" * 1024
    with pytest.raises(ValidationError, match="1025 characters long"):
        safe_name("x" * 1025)


def test_resolve_under_refuses_symlink_escape(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    (root / "inner").mkdir()
    (root / "ok").symlink_to(root / "inner")
    assert resolve_under(root, "a/b.txt") == (root / "a" / "b.txt").resolve()
    assert resolve_under(root, "ok/x") == (root / "inner" / "x").resolve()
    with pytest.raises(ValidationError, match="outside"):
        resolve_under(root, "link/x")
    with pytest.raises(ValidationError, match="outside"):
        resolve_under(root, "link")
    with pytest.raises(ValidationError, match=r"'\.\.' path segment"):
        resolve_under(root, "../outside/x")


# -- local store ------------------------------------------------------------------------------------


def test_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    data = b"hello stead\n" * 1000
    digest = store.put_bytes(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.exists(digest)
    assert store.size(digest) == len(data)
    assert store.get_bytes(digest) == data
    path = store.local_path(digest)
    assert path == tmp_path / "store" / "sha256" / digest[:2] / digest[2:]
    assert path is not None and path.read_bytes() == data
    with store.open(digest) as stream:
        assert stream.read() == data
    store.verify(digest)
    out = store.copy_to(digest, tmp_path / "out" / "copy.bin")
    assert out.read_bytes() == data


def test_put_file_and_stream_match_put_bytes(store: ArtifactStore, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several chunks
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    d1 = store.put_file(src)
    d2 = store.put_stream(io.BytesIO(data))
    d3 = store.put_bytes(data)
    assert d1 == d2 == d3 == hashlib.sha256(data).hexdigest()
    assert store.get_bytes(d1) == data


def test_empty_blob(store: ArtifactStore) -> None:
    digest = store.put_bytes(b"")
    assert store.get_bytes(digest) == b""
    assert store.size(digest) == 0


def test_dedup_stores_content_once(store: ArtifactStore, tmp_path: Path) -> None:
    root = tmp_path / "store"
    digests = {store.put_bytes(b"same"), store.put_stream(io.BytesIO(b"same")), store.put_bytes(b"same")}
    assert len(digests) == 1
    assert len(blob_files(root)) == 1
    blob = blob_files(root)[0]
    mtime = blob.stat().st_mtime_ns
    store.put_bytes(b"same")
    assert blob.stat().st_mtime_ns == mtime  # not rewritten
    assert list((root / "tmp").iterdir()) == []  # no temp left behind


def test_integrity_error_names_artifact(store: ArtifactStore, tmp_path: Path) -> None:
    data = b"the model weights" * 100
    digest = store.put_bytes(data)
    blob = store.local_path(digest)
    assert blob is not None
    raw = bytearray(blob.read_bytes())
    raw[10] ^= 0x01
    blob.write_bytes(bytes(raw))
    actual = hashlib.sha256(bytes(raw)).hexdigest()

    with pytest.raises(IntegrityError) as info:
        store.get_bytes(digest, name="model/model.skops")
    assert str(info.value) == (
        f"artifact 'model/model.skops' (sha256 {digest}) is corrupted: its content hashes to {actual}"
    )
    with pytest.raises(IntegrityError, match=digest):
        store.get_bytes(digest)
    with pytest.raises(IntegrityError, match=r"model\.skops"), store.open(digest, name="model.skops") as stream:
        stream.read()
    with pytest.raises(IntegrityError, match=digest):
        store.verify(digest)
    dest = tmp_path / "dest" / "model.skops"
    with pytest.raises(IntegrityError, match=r"model\.skops"):
        store.copy_to(digest, dest, name="model.skops")
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temp left either


def test_missing_blob(store: ArtifactStore, tmp_path: Path) -> None:
    digest = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(digest)
    with pytest.raises(NotFoundError, match=r"'plots/roc\.png'"):
        store.get_bytes(digest, name="plots/roc.png")
    with pytest.raises(NotFoundError):
        store.open(digest)
    with pytest.raises(NotFoundError):
        store.size(digest)
    with pytest.raises(NotFoundError):
        store.local_path(digest)
    with pytest.raises(NotFoundError):
        store.copy_to(digest, tmp_path / "x")


@pytest.mark.parametrize("digest", ["", "abc", "A" * 64, "g" * 64, "../" + "a" * 61, "a" * 65])
def test_bad_digest_refused(store: ArtifactStore, digest: str) -> None:
    with pytest.raises(ValidationError, match="not a sha256 digest"):
        store.exists(digest)
    with pytest.raises(ValidationError):
        store.get_bytes(digest)


def test_put_tree_and_materialize(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "plots").mkdir(parents=True)
    (src / "model.skops").write_bytes(b"model")
    (src / "plots" / "roc.png").write_bytes(b"png")
    (src / "plots" / "copy.png").write_bytes(b"png")
    (src / "alias.bin").symlink_to(src / "model.skops")  # inside: stored by content
    manifest = store.put_tree(src)
    assert list(manifest) == ["alias.bin", "model.skops", "plots/copy.png", "plots/roc.png"]
    assert manifest["plots/roc.png"] == manifest["plots/copy.png"] == hashlib.sha256(b"png").hexdigest()
    assert manifest["alias.bin"] == manifest["model.skops"]
    assert len(blob_files(tmp_path / "store")) == 2

    dest = tmp_path / "dest"
    written = store.materialize(manifest, dest)
    assert (dest / "plots" / "roc.png").read_bytes() == b"png"
    assert (dest / "alias.bin").read_bytes() == b"model"
    assert not (dest / "alias.bin").is_symlink()
    assert set(written) == set(manifest)
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == sorted(manifest)


def test_put_tree_refuses_symlink_outside(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"secret")
    (src / "ok.txt").write_bytes(b"ok")
    (src / "leak.txt").symlink_to(secret)
    with pytest.raises(ValidationError, match="outside the folder"):
        store.put_tree(src)
    (src / "leak.txt").unlink()
    (src / "leakdir").symlink_to(tmp_path)
    with pytest.raises(ValidationError, match="outside the folder"):
        store.put_tree(src)
    (src / "leakdir").unlink()
    (src / "loop").symlink_to(src)
    with pytest.raises(ValidationError, match="symlink loop"):
        store.put_tree(src)
    (src / "loop").unlink()
    (src / "sub").mkdir()
    (src / "sub" / "up").symlink_to(src / "sub")
    with pytest.raises(ValidationError, match="symlink loop"):
        store.put_tree(src)


@pytest.mark.parametrize("name", ["a\\b", "%2e%2e", "~x", "new\nline", "a%2fb"])
def test_put_tree_refuses_bad_file_names(store: ArtifactStore, tmp_path: Path, name: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / name).write_bytes(b"x")
    with pytest.raises(ValidationError, match="is not allowed"):
        store.put_tree(src)
    assert not (tmp_path / "store").exists()  # refused before any blob was written


def test_materialize_refuses_symlink_in_dest(store: ArtifactStore, tmp_path: Path) -> None:
    digest = store.put_bytes(b"payload")
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "link").symlink_to(outside)
    (dest / "file").symlink_to(outside / "target.txt")
    with pytest.raises(ValidationError, match="outside"):
        store.materialize({"ok.txt": digest, "link/x.txt": digest}, dest)
    with pytest.raises(ValidationError, match="outside"):
        store.materialize({"file": digest}, dest)
    assert list(outside.iterdir()) == []
    assert not (dest / "ok.txt").exists()  # all names checked before anything is written


def test_materialize_refuses_file_folder_clash(store: ArtifactStore, tmp_path: Path) -> None:
    digest = store.put_bytes(b"x")
    with pytest.raises(ValidationError, match="both a file and a folder"):
        store.materialize({"a": digest, "a/b": digest}, tmp_path / "dest")


def test_bad_names_write_nothing_outside(store: ArtifactStore, tmp_path: Path) -> None:
    root = tmp_path / "store"
    dest = tmp_path / "dest"
    digest = store.put_bytes(b"escape attempt")
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_bytes(b"ok")
    before = snapshot(tmp_path.parent, root, dest)
    for param in BAD_NAMES:
        (name,) = param.values
        assert isinstance(name, str)
        with pytest.raises(ValidationError):
            store.materialize({name: digest}, dest)
        with pytest.raises(ValidationError):
            store.materialize({"ok.txt": digest, name: digest}, dest)
        with pytest.raises(ValidationError):
            resolve_under(dest, name)
        assert store.put_tree(src) == {"ok.txt": hashlib.sha256(b"ok").hexdigest()}
    assert snapshot(tmp_path.parent, root, dest) == before
    assert not dest.exists() or list(dest.iterdir()) == []


# -- concurrency and crashes ------------------------------------------------------------------------


def _concurrent_writer(root: str, src: str, use_file: bool, barrier: Any, results: Any) -> None:
    store = ArtifactStore(root)
    barrier.wait()
    try:
        digest = store.put_file(src) if use_file else store.put_bytes(Path(src).read_bytes())
        results.put(("ok", digest))
    except BaseException as exc:  # report to the parent
        results.put(("error", repr(exc)))


def test_concurrent_writers_of_same_content(tmp_path: Path) -> None:
    root = tmp_path / "store"
    data = os.urandom(4 * 1024 * 1024)
    src = tmp_path / "payload.bin"
    src.write_bytes(data)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(8)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_concurrent_writer, args=(str(root), str(src), i % 2 == 0, barrier, results))
        for i in range(8)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    expected = hashlib.sha256(data).hexdigest()
    assert outcomes == [("ok", expected)] * 8
    assert blob_files(root) == [root / "sha256" / expected[:2] / expected[2:]]
    assert list((root / "tmp").iterdir()) == []
    assert ArtifactStore(str(root)).get_bytes(expected) == data


class _StallingStream:
    """Yields one chunk, signals the parent, then blocks forever (until the process is killed)."""

    def __init__(self, ready: Any) -> None:
        self.ready = ready
        self.sent = False

    def read(self, size: int = -1) -> bytes:
        if not self.sent:
            self.sent = True
            return b"partial bytes " * 1000
        self.ready.set()
        time.sleep(600)
        return b""


def _stalling_writer(root: str, ready: Any) -> None:
    ArtifactStore(root).put_stream(_StallingStream(ready))  # type: ignore[arg-type]


def test_killed_writer_leaves_only_a_temp_file(tmp_path: Path) -> None:
    root = tmp_path / "store"
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_stalling_writer, args=(str(root), ready))
    proc.start()
    try:
        assert ready.wait(timeout=60)
    finally:
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=30)
    assert proc.exitcode == -signal.SIGKILL

    stray = list((root / "tmp").iterdir())
    assert len(stray) == 1 and stray[0].name.startswith(".tmp-")
    assert not (root / "sha256").exists() or blob_files(root) == []

    store = ArtifactStore(str(root))
    partial = stray[0].read_bytes()
    partial_digest = hashlib.sha256(partial).hexdigest()
    assert not store.exists(partial_digest)
    with pytest.raises(NotFoundError):
        store.get_bytes(partial_digest)

    # a stray temp file in a shard folder (an older layout, or a crash elsewhere) is not a blob either
    shard = root / "sha256" / partial_digest[:2]
    shard.mkdir(parents=True)
    (shard / ".tmp-123-abc").write_bytes(partial)
    assert not store.exists(partial_digest)

    # the store keeps working: the full write lands, the stray files never shadow it
    assert store.put_bytes(partial) == partial_digest
    assert store.get_bytes(partial_digest) == partial
    assert store.sweep_temp(older_than_seconds=3600) == 0  # young temp files are left alone
    assert store.sweep_temp(older_than_seconds=0) == 1
    assert list((root / "tmp").iterdir()) == []


# -- fsspec (memory://) -----------------------------------------------------------------------------


def test_memory_round_trip_and_dedup(memstore: ArtifactStore) -> None:
    import fsspec

    assert not memstore.is_local
    data = b"in memory" * 500
    digest = memstore.put_bytes(data)
    assert memstore.put_stream(io.BytesIO(data)) == digest
    assert memstore.exists(digest)
    assert memstore.size(digest) == len(data)
    assert memstore.get_bytes(digest) == data
    assert memstore.local_path(digest) is None
    with memstore.open(digest) as stream:
        assert stream.read() == data
    fs = fsspec.filesystem("memory")
    base = memstore.root.removeprefix("memory://")
    assert fs.find(f"/{base}") == [f"/{base}/sha256/{digest[:2]}/{digest[2:]}"]


def test_memory_integrity(memstore: ArtifactStore, tmp_path: Path) -> None:
    import fsspec

    digest = memstore.put_bytes(b"good bytes")
    fs = fsspec.filesystem("memory")
    base = memstore.root.removeprefix("memory://")
    fs.pipe(f"/{base}/sha256/{digest[:2]}/{digest[2:]}", b"bad bytes!")
    with pytest.raises(IntegrityError, match=r"artifact 'm\.bin' \(sha256 " + digest):
        memstore.get_bytes(digest, name="m.bin")
    with pytest.raises(IntegrityError):
        memstore.copy_to(digest, tmp_path / "m.bin")
    assert not (tmp_path / "m.bin").exists()
    with pytest.raises(NotFoundError):
        memstore.get_bytes(hashlib.sha256(b"nope").hexdigest())


def test_memory_tree(memstore: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "a.txt").write_bytes(b"a")
    (src / "b.txt").write_bytes(b"b")
    manifest = memstore.put_tree(src)
    assert list(manifest) == ["b.txt", "d/a.txt"]
    memstore.materialize(manifest, tmp_path / "out")
    assert (tmp_path / "out" / "d" / "a.txt").read_bytes() == b"a"


def test_file_url_uses_local_path(tmp_path: Path) -> None:
    store = ArtifactStore((tmp_path / "store").as_uri())
    assert store.is_local
    digest = store.put_bytes(b"x")
    assert store.local_path(digest) == tmp_path / "store" / "sha256" / digest[:2] / digest[2:]
