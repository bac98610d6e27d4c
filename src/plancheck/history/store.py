"""The run-history store: a database reached through SQLAlchemy Core, migrated by Alembic.

`--db URL` (or `PLANCHECK_DB`) names it; the default is `history.sqlite` under the user's data
directory. A plain path is an SQLite file; `postgresql://` URLs go through psycopg 3. SQLite runs
in WAL mode, so reading the history (`plancheck runs`) never waits for a batch that is writing.

A new, empty database is created at the current schema when first used; a database made by an
older plancheck must be upgraded first with `plancheck db upgrade` (recording refuses it, exit 2,
rather than write into a schema it does not know), and one made by a newer plancheck is refused
by every command, naming its revision. A creation or an upgrade is one transaction (SQLite's
DDL is transactional once the driver stops committing around it, see `_sqlite_connect`): one that
fails leaves nothing, or the version before.

Every use of the database goes through `connect()` / `begin()`, which turn any driver error into
an `InputError` (faults.py: one line naming the database, what is wrong and what to do). The pool
tests a connection before handing it out (`pool_pre_ping`): a PostgreSQL server restarted since
the last use costs a reconnection, not the night.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from plancheck.errors import InputError, Problem

try:
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection, Engine
except ImportError:  # pragma: no cover - the `history` extra is not installed
    raise InputError(Problem("--db", "", "the run history needs the history extra: "
                             "pip install 'plancheck[history]'")) from None
from plancheck.history import schema
from plancheck.history.faults import database_problem, fault
from plancheck.history.schema import HEAD as HEAD
from plancheck.history.schema import head_revision as head_revision
from plancheck.history.tables import acks, findings, resolutions, run_plan_years, run_years, runs

#: Seconds a write waits for another process's lock (SQLite's busy timeout, PostgreSQL's lock_timeout) before the
#: database is "locked": a lock held all night fails the run in seconds, not at dawn.
BUSY_SECONDS = 5.0

#: The PostgreSQL advisory lock a creation or an upgrade holds ("plan" in ASCII).
SCHEMA_LOCK = 0x706C616E

#: The highest run number there can be: `runs.id` is an INTEGER (32 bits on PostgreSQL).
MAX_RUN = 2**31 - 1

#: A fingerprint, or the start of one, as `ack` takes it: hexadecimal (never a LIKE pattern).
FINGERPRINT = re.compile(r"[0-9a-f]{8,64}")


def default_url() -> str:
    """`PLANCHECK_DB`, else an SQLite file under the user's data directory."""
    if os.environ.get("PLANCHECK_DB"):
        return os.environ["PLANCHECK_DB"]
    from platformdirs import user_data_dir
    return str(Path(user_data_dir("plancheck")) / "history.sqlite")


def normalize_url(url: str) -> str:
    """A plain path becomes an SQLite URL; `postgresql://` uses psycopg 3 (SQLAlchemy's default is psycopg2)."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def today() -> dt.date:
    """The day acknowledgements are judged on (a function, so the tests can move the clock)."""
    return dt.date.today()


class Store:
    """One history database."""

    def __init__(self, url: str | None = None, reading: bool = False):
        """`reading`: only read (`runs`, `report`): an SQLite file on a read-only filesystem (an archive) is then
        opened immutable, read-only, which SQLite cannot do by itself for a database in WAL mode."""
        if url is not None and not url.strip():
            raise InputError(Problem("--db", "", "give an SQLite file or a database URL (an empty --db names none)"))
        given = url or default_url()
        self.url = normalize_url(given)
        if reading and "://" not in given and _archived(Path(self.url[len("sqlite:///"):])):
            self.url = f"sqlite:///file:{self.url[len('sqlite:///'):]}?mode=ro&immutable=1&uri=true"
        try:
            sqlite = self.url.startswith("sqlite:")
            self.engine: Engine = sa.create_engine(
                self.url, pool_pre_ping=True, **({"connect_args": {"timeout": BUSY_SECONDS}} if sqlite else {}))
        except Exception as exc:  # a bad URL, an unknown driver
            raise InputError(Problem("--db", "", f"cannot open the history database: {exc}")) from None
        if sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_connect)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        elif self.engine.dialect.name == "postgresql":
            sa.event.listen(self.engine, "connect", _postgresql_connect)
        if "://" not in given and not self.url.startswith("sqlite:///file:"):  # a plain path: its folder is made
            link = Path(given).expanduser()
            if link.is_symlink() and not link.exists():
                raise fault(self.engine, f"is named by a symbolic link to nothing ({given} -> {os.readlink(link)})",
                            "give the database's own path, or remove the link")
            try:
                Path(self.engine.url.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise fault(self.engine, f"cannot be made ({exc.strerror or exc})",
                            "give a path whose folder can be made") from None

    @contextlib.contextmanager
    def faults(self) -> Iterator[None]:
        """Any database or migration error inside becomes the one-line InputError of faults.py."""
        driver_error = getattr(self.engine.dialect.loaded_dbapi, "Error", sa.exc.SQLAlchemyError)
        try:
            yield
        except (sa.exc.SQLAlchemyError, driver_error, json.JSONDecodeError) as exc:  # orjson's is json's
            raise database_problem(self.engine, exc) from None

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection (reading), driver errors made one line."""
        with self.faults(), self.engine.connect() as connection:
            yield connection

    @contextlib.contextmanager
    def begin(self, exclusive: bool = False) -> Iterator[Connection]:
        """A connection in one transaction (writing), committed at the end, driver errors made one line. `exclusive`:
        one such transaction at a time (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock), waited for."""
        with self.faults(), self.engine.connect() as connection:
            if exclusive:
                connection.execution_options(plancheck_exclusive=True)
            with connection.begin():
                if exclusive and self.engine.dialect.name == "postgresql":
                    connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
                yield connection

    def revision(self) -> str | None:
        """The schema revision Alembic recorded (its `alembic_version` table), None in a database it never migrated;
        one this plancheck does not know is refused (schema.py)."""
        with self.connect() as connection:
            return schema.revision(self, connection)

    def verify(self) -> Store:
        """Checked before a run is recorded into it (schema.py)."""
        schema.verify(self)
        return self

    def upgrade(self, target: str = "head", verify: bool = False) -> tuple[str | None, str | None]:
        """Migrate in place, in one transaction; the revisions before and after (schema.py)."""
        return schema.upgrade(self, target, verify)

    def ready(self, verify: bool = False) -> Store:
        """Create a new database at the current schema; refuse one at an older or a newer revision. With `verify`
        (a run is to be recorded), `verify()` it first."""
        current = self.revision()
        if current is None:
            self.upgrade(verify=verify)
            return self
        if verify:
            self.verify()
        if current != HEAD:
            raise fault(self.engine, f"is at schema revision {current}, this plancheck needs {HEAD}",
                        "run `plancheck db upgrade`")
        return self

    # -- reading ---------------------------------------------------------------------------------

    def runs(self, limit: int | None = None, scope: str | None = None, completed: bool = True,
             up_to: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first (only those up to run `up_to` when given)."""
        query = sa.select(runs).order_by(runs.c.id.desc())
        limit = min(limit, MAX_RUN) if limit else limit
        up_to = min(up_to, MAX_RUN) if up_to is not None else None
        if up_to is not None:
            query = query.where(runs.c.id <= up_to)
        if completed:
            query = query.where(runs.c.ended_at.is_not(None))
        if scope:
            query = query.where(runs.c.scope == scope)
        if limit:
            query = query.limit(limit)
        with self.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def run(self, run_id: int) -> dict[str, Any]:
        """Run `run_id`; no such run (a number no run can have too: 0, negative, beyond MAX_RUN) is an InputError."""
        if not 1 <= run_id <= MAX_RUN:
            raise InputError(Problem("RUN", "", f"no run {run_id} in the history"))
        with self.connect() as connection:
            row = connection.execute(sa.select(runs).where(runs.c.id == run_id)).first()
        if row is None:
            raise InputError(Problem("RUN", "", f"no run {run_id} in the history"))
        return dict(row._mapping)

    def previous_run(self, scope: str, before: int, year: int | None = None, by_year: bool = False) -> int | None:
        """The last completed run of the same scope before run `before`; with `by_year`, the last whose
        input covered `year` (see recording.py)."""
        query = (sa.select(runs.c.id).where(runs.c.scope == scope, runs.c.ended_at.is_not(None), runs.c.id < before)
                 .order_by(runs.c.id.desc()).limit(1))
        if by_year:
            query = query.join(run_years, run_years.c.run_id == runs.c.id).where(run_years.c.year == year)
        with self.connect() as connection:
            return connection.execute(query).scalar()

    def last_covering(self, scope: str, before: int) -> dict[tuple[str, int], int]:
        """(plan, year) -> the last completed run of the scope before run `before` that covered that plan's year
        (plan "*": a run recorded before plans were kept, which covered the year for every plan)."""
        query = (sa.select(run_plan_years.c.plan_id, run_plan_years.c.year, sa.func.max(run_plan_years.c.run_id))
                 .join(runs, runs.c.id == run_plan_years.c.run_id)
                 .where(runs.c.scope == scope, runs.c.ended_at.is_not(None), runs.c.id < before)
                 .group_by(run_plan_years.c.plan_id, run_plan_years.c.year))
        with self.connect() as connection:
            return {(plan, year): run for plan, year, run in connection.execute(query)}

    def findings(self, run_id: int, by_rule: bool = False) -> Iterator[dict[str, Any]]:
        """A run's findings in the order they were recorded (or by rule), each with its event decoded."""
        order = (findings.c.rule, findings.c.id) if by_rule else (findings.c.id,)
        query = sa.select(findings).where(findings.c.run_id == run_id).order_by(*order)
        with self.connect() as connection:
            for row in connection.execution_options(yield_per=10_000).execute(query):
                record = dict(row._mapping)
                record["event"] = orjson.loads(record["event"])
                yield record

    def earlier_findings(self, run_id: int, year: int | None = None) -> dict[str, tuple[int, int]]:
        """fingerprint -> (the run it was first seen in, its row id), for the findings of `run_id` (of `year`)."""
        found: dict[str, tuple[int, int]] = {}
        for by_fingerprint in self.earlier_findings_by_plan(run_id, year).values():
            found.update(by_fingerprint)
        return found

    def earlier_findings_by_plan(self, run_id: int, year: int | None = None) -> dict[str, dict[str, tuple[int, int]]]:
        """plan ("" for a finding without one) -> fingerprint -> (the run it was first seen in, its row id), for the
        findings of `run_id` (of `year`).

        Read through the driver's own cursor: it is the one read of a night that is as large as
        the night (100,000 rows), and SQLAlchemy's row objects would double its cost.
        """
        marker = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        sql = f"SELECT plan_id, fingerprint, first_seen, id FROM findings WHERE run_id = {marker}"
        parameters: tuple = (run_id,)
        if year is not None:
            sql += f" AND year = {marker}"
            parameters += (year,)
        found: dict[str, dict[str, tuple[int, int]]] = {}
        with self.connect() as connection:
            cursor = connection.connection.cursor()
            try:
                cursor.execute(sql, parameters)
                for plan, fp, first, finding_id in cursor.fetchall():
                    found.setdefault(plan or "", {})[fp] = (first, finding_id)
            finally:
                cursor.close()
        return found

    def resolved(self, run_id: int) -> Iterator[dict[str, Any]]:
        """The findings run `run_id` resolved: each as its last occurrence (a finding of the run it was
        compared with, whose number is `previous_run`), in the order they were recorded there."""
        query = (sa.select(findings, findings.c.run_id.label("previous_run"))
                 .join(resolutions, resolutions.c.finding_id == findings.c.id)
                 .where(resolutions.c.run_id == run_id).order_by(findings.c.id))
        with self.connect() as connection:
            for row in connection.execution_options(yield_per=10_000).execute(query):
                record = dict(row._mapping)
                record["event"] = orjson.loads(record["event"])
                yield record

    def run_plan_years(self, run_id: int) -> list[dict[str, Any]]:
        """The plans and years a run over dated data covered, each with the run it was compared with and what it
        resolved."""
        query = (sa.select(run_plan_years.c.plan_id, run_plan_years.c.year, run_plan_years.c.previous_run,
                           run_plan_years.c.resolved).where(run_plan_years.c.run_id == run_id)
                 .order_by(run_plan_years.c.year, run_plan_years.c.plan_id))
        with self.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def run_years(self, run_id: int) -> list[dict[str, Any]]:
        """The years a run over dated data covered, each with the run it was compared with and what it resolved."""
        query = sa.select(run_years).where(run_years.c.run_id == run_id).order_by(run_years.c.year)
        with self.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def active_acks(self, on: dt.date) -> dict[str, set[str]]:
        """fingerprint -> the figures hashes acknowledged for it, for acknowledgements still in force on `on`."""
        query = sa.select(acks.c.fingerprint, acks.c.figures).where(sa.or_(acks.c.until.is_(None), acks.c.until >= on))
        active: dict[str, set[str]] = {}
        with self.connect() as connection:
            for fp, figures in connection.execute(query):
                active.setdefault(fp, set()).add(figures)
        return active

    def acks(self) -> list[dict[str, Any]]:
        with self.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(sa.select(acks).order_by(acks.c.id))]

    # -- writing ---------------------------------------------------------------------------------

    def acknowledge(self, fingerprint: str, reason: str, until: dt.date | None, by: str | None = None) -> dict[str, Any]:
        """Acknowledge the finding whose fingerprint is (or starts with, 8 characters at least) `fingerprint`,
        at the figures of its latest recorded occurrence."""
        if len(fingerprint) < 8:
            raise InputError(Problem("FINGERPRINT", "", "give at least 8 characters of the fingerprint",
                                     got=fingerprint))
        if not FINGERPRINT.fullmatch(fingerprint.lower()):
            raise InputError(Problem("FINGERPRINT", "", "a fingerprint is 8 to 64 hexadecimal characters (0-9, a-f)",
                                     got=fingerprint))
        # A prefix, matched with every LIKE wildcard escaped (the check above already leaves none).
        query = (sa.select(findings.c.fingerprint, findings.c.figures, findings.c.rule, findings.c.plan_id,
                           findings.c.employee_id, findings.c.year)
                 .where(findings.c.fingerprint.startswith(fingerprint.lower(), autoescape=True))
                 .order_by(findings.c.id.desc()))
        with self.begin() as connection:
            rows = connection.execute(query).all()
            if not rows:
                raise InputError(Problem("FINGERPRINT", "", "no recorded finding has this fingerprint", got=fingerprint))
            if len({r.fingerprint for r in rows}) > 1:
                raise InputError(Problem("FINGERPRINT", "", "more than one finding starts with this; give more of it",
                                         got=fingerprint))
            latest = rows[0]
            record = {"fingerprint": latest.fingerprint, "figures": latest.figures, "reason": reason, "until": until,
                      "acknowledged_by": by or _user(), "acknowledged_at": now()}
            record["id"] = connection.execute(acks.insert().values(**record)).inserted_primary_key[0]
        return record | {"rule": latest.rule, "plan_id": latest.plan_id, "employee_id": latest.employee_id,
                         "year": latest.year}


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without passwd entry)
        return f"uid {os.getuid()}"


def _archived(path: Path) -> bool:
    """An SQLite file on a read-only filesystem, its write-ahead log empty or absent (else immutable reading would
    not see what the log holds)."""
    try:
        wal = Path(f"{path}-wal")
        return (path.is_file() and bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
                and (not wal.exists() or wal.stat().st_size == 0))
    except OSError:
        return False


def _sqlite_connect(dbapi_connection, _record) -> None:
    """The driver leaves transactions to SQLAlchemy (`_sqlite_begin`): Python's sqlite3 module would otherwise commit
    before every CREATE, so a creation that failed half-way stayed half-built."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # Turning a new file to WAL needs its lock for a moment, and SQLite answers "locked" at once instead of calling
    # its busy handler when another process holds it (four first runs at one instant): wait for it as for any lock.
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    """BEGIN, or for `Store.begin(exclusive=True)` BEGIN IMMEDIATE: the write lock first (waited for up to
    BUSY_SECONDS), so that two processes creating the database at once do not both read it empty."""
    exclusive = connection.get_execution_options().get("plancheck_exclusive")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if exclusive else "BEGIN")


def _postgresql_connect(dbapi_connection, _record) -> None:
    """A lock held by another session (a `LOCK TABLE`, a migration) is waited for BUSY_SECONDS, not forever."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute(f"SET lock_timeout = {int(BUSY_SECONDS * 1000)}")
    dbapi_connection.commit()
