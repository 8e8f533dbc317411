"""Find or start a throwaway PostgreSQL cluster for the tests.

``start()`` returns a :class:`PostgresServer` whose ``url`` points at the ``postgres``
database of a server the tests may do anything with:

1. if ``STEAD_TEST_POSTGRES_URL`` is set, that server is used as is (and never stopped);
2. otherwise ``initdb``/``pg_ctl`` are located (``PATH``, then the highest
   ``/usr/lib/postgresql/*/bin``) and a fresh cluster is created in a temporary
   directory, listening on a free port of 127.0.0.1 with trust authentication.

``initdb`` refuses to run as root, so as root the binaries run as the ``postgres``
OS user through ``runuser`` (the user is created when missing).
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ENV_URL = "STEAD_TEST_POSTGRES_URL"
OS_USER = "postgres"
_START_ATTEMPTS = 3


class PostgresUnavailable(RuntimeError):
    """PostgreSQL could not be found or started; the message says why."""


@dataclass
class PostgresServer:
    url: str  # postgresql://user@host:port/postgres
    _stop: list[str] | None = field(default=None, repr=False)  # pg_ctl stop command, None if not ours
    _dir: Path | None = field(default=None, repr=False)

    def database_url(self, name: str) -> str:
        """The URL of database ``name`` on this server."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path="/" + name))

    def stop(self) -> None:
        """Stop the cluster (``pg_ctl stop -m immediate``) and remove its directory. Idempotent."""
        if self._stop is not None:
            command, self._stop = self._stop, None
            subprocess.run(command, capture_output=True, check=False, timeout=60, cwd=self._dir)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def start() -> PostgresServer:
    """Use ``$STEAD_TEST_POSTGRES_URL`` or start a new cluster; raise PostgresUnavailable on failure."""
    env_url = os.environ.get(ENV_URL)
    if env_url:
        parts = urlsplit(env_url)
        # psycopg wants a libpq URI: drop any SQLAlchemy "+driver" suffix from the scheme.
        return PostgresServer(url=urlunsplit(parts._replace(scheme="postgresql")))
    initdb, pg_ctl = find_binaries()
    as_user = _run_as_prefix()
    last_error: PostgresUnavailable | None = None
    for _ in range(_START_ATTEMPTS):  # retry only when the free port was taken meanwhile
        try:
            return _start_cluster(initdb, pg_ctl, as_user)
        except _PortTaken as exc:
            last_error = exc
    assert last_error is not None
    raise last_error


def find_binaries() -> tuple[str, str]:
    """Paths of ``initdb`` and ``pg_ctl``: from PATH, else the highest /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("initdb")
    if on_path:
        sibling = Path(os.path.realpath(on_path)).with_name("pg_ctl")
        pg_ctl = str(sibling) if sibling.exists() else shutil.which("pg_ctl")
        if pg_ctl:
            return on_path, pg_ctl

    def version(bin_dir: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(bin_dir).parent.name)) or (0,)

    for bin_dir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        initdb, pg_ctl = Path(bin_dir, "initdb"), Path(bin_dir, "pg_ctl")
        if initdb.exists() and pg_ctl.exists():
            return str(initdb), str(pg_ctl)
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found: no initdb/pg_ctl on PATH nor in /usr/lib/postgresql/*/bin. "
        f"Install them (Debian: apt-get install postgresql) or set {ENV_URL}."
    )


class _PortTaken(PostgresUnavailable):
    pass


def _run_as_prefix() -> list[str]:
    """``runuser -u postgres --`` when running as root (initdb refuses root), else nothing."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        _run(["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", OS_USER])
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", OS_USER, "--"]


def _base_dir(as_user: list[str]) -> str | None:
    """Where to make the temp dir; as root, make sure the postgres user can reach it."""
    base = Path(tempfile.gettempdir()).resolve()
    if not as_user:
        return None
    for directory in (base, *base.parents):
        if not os.stat(directory).st_mode & 0o001:  # "others" cannot traverse it
            return "/tmp"
    return str(base)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_cluster(initdb: str, pg_ctl: str, as_user: list[str]) -> PostgresServer:
    root = Path(tempfile.mkdtemp(prefix="stead-pg-", dir=_base_dir(as_user)))
    server = PostgresServer(url="", _dir=root)
    try:
        data, log = root / "data", root / "postgres.log"
        if as_user:
            entry = pwd.getpwnam(OS_USER)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        _run(
            [
                *as_user,
                initdb,
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            cwd=root,
        )
        port = _free_port()
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(root),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "16MB",
            "max_connections": "200",
            "logging_collector": "off",
        }
        with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# stead tests\n")
            conf.writelines(f"{key} = '{value}'\n" for key, value in settings.items())
        # Set before starting: a timed-out start may leave a postmaster behind, and stop() must kill it.
        server._stop = [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]
        started = time.monotonic()
        result = subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "start"],
            capture_output=True,
            text=True,
            cwd=root,
            check=False,
            timeout=90,
        )
        if result.returncode != 0:
            log_text = log.read_text(errors="replace") if log.exists() else "(no log file)"
            message = (
                f"pg_ctl start failed (exit {result.returncode}) after {time.monotonic() - started:.1f}s\n"
                f"--- pg_ctl output ---\n{result.stdout}{result.stderr}\n--- {log} ---\n{log_text}"
            )
            if "Address already in use" in log_text or "could not bind" in log_text:
                raise _PortTaken(message)
            raise PostgresUnavailable(message)
        server.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        atexit.register(server.stop)  # in case the caller never gets to stop it
        return server
    except BaseException:
        server.stop()
        raise


def _run(command: list[str], cwd: Path | None = None) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PostgresUnavailable(f"{command[0]!r} could not run: {exc}") from exc
    if result.returncode != 0:
        raise PostgresUnavailable(
            f"command failed (exit {result.returncode}): {' '.join(command)}\n{result.stdout}{result.stderr}"
        )
