"""A real PostgreSQL for the tests: one throwaway cluster on 127.0.0.1, a fresh database per test.

`PostgresCluster` runs `initdb` in a temporary directory (trust authentication, so any password in
a URL is accepted: tests can put one in and check it never shows), starts the server on a free
port with its socket in that directory, and can be stopped and started again mid-test
(`stopped()`), on the same port and data, to test a database that goes away and comes back.

PostgreSQL must be installed (Debian: `apt-get install postgresql`). When it is not, it is
installed here if that can be done without asking (CI is set, or running as root with apt-get);
otherwise the tests that need it fail, loudly, saying how to install it. They are never skipped.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

INSTALL_HINT = ("PostgreSQL is needed by the database tests and is not installed: install it with "
                "`sudo apt-get install -y postgresql` (Debian/Ubuntu), `brew install postgresql` (macOS), or put "
                "its bin directory (initdb, pg_ctl) on PATH, then run the tests again")
PASSWORD = "s3cret"
"""In every URL handed out; trust authentication ignores it, and no message may ever show it."""


class PostgresUnavailable(RuntimeError):
    pass


def find_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian's layout first, then PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda path: int(Path(path).parent.parent.name) if Path(path).parent.parent.name.isdigit()
                   else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def can_install() -> bool:
    return bool(os.environ.get("CI")) or (os.geteuid() == 0 and shutil.which("apt-get") is not None)


def install() -> None:
    """`apt-get install -y postgresql`, after `apt-get update` if the package is not found at first."""
    if shutil.which("apt-get") is None:
        raise PostgresUnavailable(INSTALL_HINT + " (CI is set but there is no apt-get here)")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = [*sudo, "apt-get", "install", "-y", "--no-install-recommends", "postgresql"]
    if subprocess.run(command, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update"], env=env, capture_output=True, check=False)
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PostgresUnavailable(f"{INSTALL_HINT}\n`apt-get install postgresql` failed:\n{result.stderr[-2000:]}")


def ensure_installed() -> Path:
    """The bin directory, installing PostgreSQL first when allowed; raises `PostgresUnavailable`."""
    bin_dir = find_bin_dir()
    if bin_dir is None and can_install():
        install()
        bin_dir = find_bin_dir()
    if bin_dir is None:
        raise PostgresUnavailable(INSTALL_HINT)
    return bin_dir


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresCluster:
    """A PostgreSQL server of its own, in a temporary directory (removed by `destroy`)."""

    def __init__(self, bin_dir: Path | None = None, *, fsync: bool = False) -> None:
        self.bin_dir = bin_dir or ensure_installed()
        self.fsync = fsync
        """False (the tests' default): faster, and nothing here must survive a power cut."""
        self.directory = Path(tempfile.mkdtemp(prefix="nexor-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self._names = itertools.count(1)
        self._as_postgres = os.geteuid() == 0  # PostgreSQL refuses to run as root
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        self.running = False
        atexit.register(self.destroy)  # a run killed halfway still stops its server

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            log = self.data / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PostgresUnavailable(f"{program} failed ({result.returncode}): {result.stderr.strip()}\n{tail}")
        return result

    def start(self) -> None:
        """Start the server (waiting until it accepts connections); on the same port as before."""
        if self.running:
            return
        fsync = "on" if self.fsync else "off"
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync={fsync}"
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-l", str(self.data / "log"), "-o", options,
                  "start")
        self.running = True

    def stop(self) -> None:
        """Stop the server now (`-m fast`: open connections are cut, as when a database goes down)."""
        if not self.running:
            return
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
        self.running = False

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """The server down for the `with` block, up again after it (even if the block fails)."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def url(self, database: str = "postgres", *, password: str | None = PASSWORD, scheme: str = "postgresql") -> str:
        """A URL to `database` as the superuser, with a password in it unless `password` is None."""
        user = "postgres" if password is None else f"postgres:{password}"
        return f"{scheme}://{user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "test") -> str:
        """A new empty database; returns its URL (with the password)."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self.start()
        with psycopg.connect(self.url(password=None), autocommit=True, connect_timeout=10) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        """Stop the server and remove its directory."""
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_cluster(*, fsync: bool = False) -> PostgresCluster:
    """A started cluster; a port taken meanwhile by someone else is retried on another one."""
    cluster = PostgresCluster(fsync=fsync)
    for attempt in range(3):
        try:
            cluster.start()
            return cluster
        except PostgresUnavailable:
            if attempt == 2:
                cluster.destroy()
                raise
            cluster.port = free_port()
    raise AssertionError("unreachable")  # pragma: no cover
