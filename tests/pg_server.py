"""A real PostgreSQL for the tests: Debian's server, started by the test run, stopped by pid.

PostgreSQL refuses to run as root, so as root `initdb` and `postgres` run as the
`postgres` user; the cluster lives in a temporary folder (its unix socket too) and listens on a
free loopback port. Password authentication over TCP, so the URLs the tests use carry a password
that must never reach a log line.

Fixtures: `pg_server` (one cluster for the session), `pg_url` (a fresh database in it for one
test, dropped after). `PgServer` itself can be started, stopped and started again (outages).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_until

PASSWORD_PREFIX = "pg-canary-"  # tests look for this in logs: it must never appear


def pg_bindir() -> str | None:
    """SIGNAGE_PG_BIN, else the newest /usr/lib/postgresql/*/bin, else `initdb` on the PATH."""
    configured = os.environ.get("SIGNAGE_PG_BIN")
    if configured and os.path.isfile(os.path.join(configured, "initdb")):
        return configured
    versions = [
        (int(p.split("/")[-3]), p)
        for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")
        if p.split("/")[-3].isdigit()
    ]
    found = [p for _, p in sorted(versions)]
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(os.path.realpath(initdb)) if initdb else None


class PgServer:
    """One PostgreSQL cluster in a temporary folder, run by an ordinary user."""

    def __init__(self) -> None:
        bindir = pg_bindir()
        if bindir is None:
            pytest.fail(
                "PostgreSQL is not installed: run scripts/ensure-services.sh (or apt-get install"
                " postgresql), or set SIGNAGE_PG_BIN to its bin folder"
            )
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="signage-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user = "signage"
        self.password = PASSWORD_PREFIX + secrets.token_hex(8)
        self.proc: subprocess.Popen | None = None
        self._run_as: dict = {}
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._run_as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        self._initdb()

    def _initdb(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._run_as:
            os.chown(pwfile, self._run_as["user"], self._run_as["group"])
        done = subprocess.run(
            [
                f"{self.bindir}/initdb",
                "-D",
                str(self.data),
                "-U",
                self.user,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            **self._run_as,
        )
        pwfile.unlink()
        assert done.returncode == 0, done.stderr

    def url(self, database: str = "postgres") -> str:
        """A URL with the password, as SIGNAGE_DATABASE would hold it."""
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> PgServer:
        """Start the server (again, after stop(), on the same port and data)."""
        first = self.proc is None
        for _attempt in range(3):
            self._spawn()
            try:
                wait_until(
                    self._ready, timeout=30, interval=0.1, message="PostgreSQL accepts connections"
                )
                return self
            except AssertionError:
                # free_port() only finds a port that was free a moment ago: another process
                # may have taken it since. A first start moves on; a restart must keep its port.
                if not (first and "Address already in use" in self.log_tail()):
                    raise
                self.port = free_port()
        raise AssertionError(self.log_tail())

    def _spawn(self) -> None:
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the server holds it
        self.proc = subprocess.Popen(
            [
                f"{self.bindir}/postgres",
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                "-c",
                "listen_addresses=127.0.0.1",
                # A throwaway cluster: durability costs time and buys nothing here.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=100",
            ],
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            **self._run_as,
        )
        log.close()

    def _ready(self) -> bool:
        import psycopg

        assert self.proc is not None and self.proc.poll() is None, self.log_tail()
        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """Fast shutdown (SIGINT): sessions are cut, as when the database host goes away."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log_tail(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def create_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = "t_" + secrets.token_hex(6)
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def remove(self) -> None:
        """Stop and delete the cluster."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL for the whole test session."""
    server = PgServer().start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """The URL of a fresh database for this test (with its password)."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, tmp_path) -> Iterator:
    """A migrated store on each backend: an SQLite file, and a fresh PostgreSQL database."""
    from signage.store import Store

    if request.param == "sqlite":
        database = str(tmp_path / "db.sqlite3")
    else:
        database = request.getfixturevalue("pg_url")
    store = Store(database, "secret")
    store.migrate()
    store.database = database  # the test's own handle on the real URL (with its password)
    yield store
    store.close()
