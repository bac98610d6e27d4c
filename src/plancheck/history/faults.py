"""What is wrong with a history database, said in one line: the database, the fault, what to do.

Every error of the database driver (SQLAlchemy's `DBAPIError` family, the driver's own errors raised
through its cursor) and of a migration (Alembic's `CommandError`) reaches the command line as an
`InputError` made here: exit status 2, one line, never a traceback. The driver's first line is kept
in parentheses, so nothing it said is lost.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from plancheck.errors import InputError, Problem

#: How much of the driver's message the line keeps.
DETAIL_CHARS = 200

#: (words in the driver's message, what is wrong, what to do), first match wins; lower-case.
_KNOWN: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("file is not a database", "disk image is malformed", "malformed database schema", "database corrupt"),
     "is damaged", "restore it from a backup, or move it aside to start a new history"),
    (("readonly database", "read-only", "read only"),
     "is read-only", "recording needs to write it: give a writable database (--db) or make it writable"),
    (("database is locked", "database table is locked", "lock timeout", "could not obtain lock"),
     "is locked by another process", "try again when it has finished"),
    (("disk is full", "no space left"),
     "cannot be written: the disk is full", "free space and run again"),
    (("disk i/o error",),
     "cannot be read or written", "check the disk it is on"),
    (("password authentication failed", "no pg_hba.conf entry", "authentication failed"),
     "refused the login", "check the user and password of the URL"),
    (("connection refused", "could not connect", "connection failed", "could not translate host name",
      "name or service not known", "timeout expired", "no route to host"),
     "cannot be reached", "check that the server is running and the URL is right"),
    (("server closed the connection", "terminating connection", "connection is closed", "connection already closed",
      "consuming input failed", "ssl syscall error", "connection is lost"),
     "lost its connection to the server", "run again"),
    (("permission denied",),
     "refused access", "grant the URL's user the rights on plancheck's tables"),
    (("no such table", "no such column", "does not exist"),
     "does not hold what plancheck's history holds", "check the URL, or restore the database from a backup"),
)


def name(engine) -> str:
    """The database as a person names it: an SQLite file's path, otherwise the URL without its password."""
    if engine.dialect.name == "sqlite" and engine.url.database:
        return engine.url.database.removeprefix("file:")
    return engine.url.render_as_string(hide_password=True).replace("postgresql+psycopg://", "postgresql://", 1)


def detail(exc: BaseException) -> str:
    """The driver's own first line (not SQLAlchemy's statement and link), cut to DETAIL_CHARS."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip()
    first = text.splitlines()[0].strip() if text else type(inner).__name__
    return first if len(first) <= DETAIL_CHARS else first[:DETAIL_CHARS] + "…"


def database_problem(engine, exc: BaseException) -> InputError:
    """The one line for a driver or migration error on `engine`'s database."""
    said = detail(exc)
    lowered = said.lower()
    where = name(engine)
    if isinstance(exc, json.JSONDecodeError):  # a stored event or summary that is not JSON: edited, or damaged
        return fault(engine, f"is damaged: it holds a record that is not JSON ({said})",
                     "restore it from a backup, or move it aside to start a new history")
    path = Path(where)
    if engine.dialect.name == "sqlite" and path.exists() and not path.is_file() and not path.is_dir():
        return fault(engine, f"is not a regular file (a device or a pipe; {said})", "give the path of a file")
    if "unable to open database file" in lowered:
        if path.is_dir():
            return fault(engine, "is a directory, not a database file", "give the path of a file")
        if path.is_file() and _read_only_folder(path.parent):
            return fault(engine, f"is on a read-only filesystem, or in a folder that may not be written ({said}): "
                         "SQLite writes its -wal and -shm files beside it", "give a writable database (--db)")
        return fault(engine, f"cannot be opened ({said})", "check that its folder exists and may be written")
    if "does not exist" in lowered and ('database "' in lowered or 'role "' in lowered):  # PostgreSQL's login
        return (fault(engine, f"is not on the server ({said})", "create it (createdb), or check the URL")
                if 'database "' in lowered else
                fault(engine, f"refused the login ({said})", "check the user and password of the URL"))
    for words, what, todo in _KNOWN:
        if any(word in lowered for word in words):
            return fault(engine, f"{what} ({said})", todo)
    return fault(engine, f"failed: {said}", "see the database's own message")


def fault(engine, what: str, todo: str) -> InputError:
    """`--db: history database NAME WHAT: TODO` as one problem."""
    return InputError(Problem("--db", "", f"history database {name(engine)} {what}: {todo}"))


def _read_only_folder(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY) or not os.access(folder, os.W_OK)
    except OSError:
        return False
