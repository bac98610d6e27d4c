"""A throwaway PostgreSQL server for the history tests: `initdb` into a temporary directory, `pg_ctl start`
on a free port, as an unprivileged user when the tests run as root (initdb refuses root)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SEARCH = ("/usr/local/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")


def server_binaries() -> tuple[str, str] | None:
    """(initdb, pg_ctl), or None where no PostgreSQL server is installed."""
    for folder in (None, *SEARCH):
        initdb = shutil.which("initdb", path=folder) if folder else shutil.which("initdb")
        pg_ctl = shutil.which("pg_ctl", path=folder) if folder else shutil.which("pg_ctl")
        if initdb and pg_ctl:
            return initdb, pg_ctl
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unprivileged_user() -> str | None:
    """None when not root; else a user that may run the server ('postgres', made if missing)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "plancheck-pg"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "plancheck-pg"], check=True)
    return "plancheck-pg"


class Server:
    """A running server; `url(db)` names a database on it, `create(db)` makes one."""

    def __init__(self) -> None:
        binaries = server_binaries()
        assert binaries is not None
        initdb, self.pg_ctl = binaries
        self.user = _unprivileged_user()
        self.root = Path(tempfile.mkdtemp(prefix="plancheck-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        if self.user:
            record = pwd.getpwnam(self.user)
            os.chown(self.root, record.pw_uid, record.pw_gid)
        self.superuser = "plancheck"
        self._run([initdb, "-D", str(self.data), "-U", self.superuser, "-A", "trust", "--no-sync", "-E", "UTF8"])
        self._run([self.pg_ctl, "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-o",
                   f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])

    def _run(self, args: list[str]) -> None:
        subprocess.run(args, check=True, capture_output=True, user=self.user, cwd=self.root, timeout=60)

    def url(self, database: str) -> str:
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def create(self, database: str) -> str:
        import psycopg
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        return self.url(database)

    def restart(self) -> None:
        """Stop the server (closing every connection to it) and start it again on the same port."""
        self._run([self.pg_ctl, "-D", str(self.data), "-l", str(self.root / "log"), "-m", "fast", "-w", "restart"])

    def stop(self) -> None:
        try:
            self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
