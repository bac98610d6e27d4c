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
from plancheck.history.faults import database_problem, fault
from plancheck.history.tables import acks, findings, metadata, resolutions, run_plan_years, run_years, runs

#: Seconds an SQLite write waits for another process's write to end before the database is "locked".
BUSY_SECONDS = 5.0

#: An SQLite history up to this size is checked whole before a run is recorded (`verify`); a larger one, all but
#: the findings of earlier runs. `PRAGMA quick_check` of a 690 MB file took 1.2-1.5 s here (12 s from a cold cache).
VERIFY_WHOLE_BYTES = 256 * 1024 * 1024

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


def _alembic_config(connection: Connection):
    from alembic.config import Config
    config = Config()
    config.set_main_option("script_location", "plancheck.history:migrations")
    config.attributes["connection"] = connection
    return config


#: The schema revisions this plancheck knows, oldest first, and the one it reads and writes (a test holds them equal
#: to migrations/). Named here so that a run checks its database without importing Alembic (a tenth of a second).
REVISIONS = ("0001", "0002", "0003", "0004")
HEAD = REVISIONS[-1]


def head_revision() -> str:
    """The newest migration, as Alembic finds it in `migrations/`."""
    from alembic.script import ScriptDirectory
    config = _alembic_config(None)  # type: ignore[arg-type]
    return ScriptDirectory.from_config(config).get_current_head()


class Store:
    """One history database."""

    def __init__(self, url: str | None = None):
        if url is not None and not url.strip():
            raise InputError(Problem("--db", "", "give an SQLite file or a database URL (an empty --db names none)"))
        given = url or default_url()
        self.url = normalize_url(given)
        try:
            sqlite = self.url.startswith("sqlite:")
            self.engine: Engine = sa.create_engine(
                self.url, pool_pre_ping=True, **({"connect_args": {"timeout": BUSY_SECONDS}} if sqlite else {}))
        except Exception as exc:  # a bad URL, an unknown driver
            raise InputError(Problem("--db", "", f"cannot open the history database: {exc}")) from None
        if sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_connect)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        if "://" not in given:  # a plain path: its folder is made (a URL names a file that is there)
            try:
                Path(self.engine.url.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise fault(self.engine, f"cannot be made ({exc.strerror or exc})",
                            "give a path whose folder can be made") from None

    @contextlib.contextmanager
    def faults(self) -> Iterator[None]:
        """Any database or migration error inside becomes the one-line InputError of faults.py."""
        driver_error = getattr(self.engine.dialect.dbapi, "Error", sa.exc.SQLAlchemyError)
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
        """The schema revision Alembic recorded (its `alembic_version` table), None in a database it never migrated."""
        with self.connect() as connection:
            return self._revision(connection)

    def _revision(self, connection: Connection) -> str | None:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        if len(versions) > 1:
            raise fault(self.engine, f"has several schema heads {versions}", "restore it from a backup")
        if versions and versions[0] not in REVISIONS:
            raise fault(self.engine, f"was written by a newer plancheck (schema revision {versions[0]}; this one knows "
                        f"up to {HEAD})", "upgrade plancheck")
        return versions[0] if versions else None

    def verify(self) -> Store:
        """Before a run is recorded into it: an SQLite file is checked (`PRAGMA quick_check`) and may be written (its
        write lock taken and given back), so that a damaged, read-only or locked file stops the run before the work
        rather than in the middle of it. A file above VERIFY_WHOLE_BYTES is checked but for the findings of earlier
        runs (`findings`, `resolutions`: they grow every night), whose damage the run meets when it reads them."""
        if self.engine.dialect.name != "sqlite":
            return self
        with self.connect() as connection:
            if _size(self.engine.url.database) <= VERIFY_WHOLE_BYTES:
                found = connection.exec_driver_sql("PRAGMA quick_check").scalars().all()
            else:
                present = connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars()
                found = [answer for table in ["sqlite_master", *sorted(set(present) - {"findings", "resolutions"})]
                         for answer in connection.exec_driver_sql(f'PRAGMA quick_check("{table}")').scalars()]
                found = [answer for answer in found if answer != "ok"] or ["ok"]
            if found != ["ok"]:
                raise fault(self.engine, f"is damaged ({found[0] if found else 'no answer'})",
                            "restore it from a backup, or move it aside to start a new history")
            connection.rollback()
            raw = connection.connection.driver_connection
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("ROLLBACK")
        return self

    def upgrade(self, target: str = "head", verify: bool = False) -> tuple[str | None, str | None]:
        """Migrate in place, in one transaction; the revisions before and after. A database that holds only the
        empty tables of a creation that did not finish (an earlier plancheck's) is created again. With `verify`,
        `verify()` it first."""
        from alembic import command
        from alembic.util.exc import CommandError
        before = self.revision()
        if verify:
            self.verify()
        try:
            with self.begin(exclusive=True) as connection:  # two first runs at once: the second finds it made
                now = self._revision(connection)
                if now is None:
                    _clear_unfinished(self, connection)
                if not (target == "head" and now == HEAD):
                    command.upgrade(_alembic_config(connection), target)
        except CommandError as exc:
            raise fault(self.engine, f"cannot be migrated ({exc})", "see `plancheck db upgrade --help`") from None
        return before, self.revision()

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


def _size(database: str | None) -> int:
    """Bytes of an SQLite file and its write-ahead log (0 for one that is not there yet, or in memory)."""
    if not database or database.startswith("file:") or database == ":memory:":
        return 0
    return sum(os.stat(p).st_size for p in (database, f"{database}-wal") if os.path.exists(p))


def _clear_unfinished(store: Store, connection: Connection) -> None:
    """In a database without a schema revision: drop the empty tables of plancheck's that a creation left when it did
    not finish (before creations were one transaction); refuse anything else, touching nothing."""
    present = set(sa.inspect(connection).get_table_names())
    ours = set(metadata.tables) | {"alembic_version"}
    if not present:
        return
    if not present <= ours or any(connection.execute(sa.text(f'SELECT 1 FROM "{table}" LIMIT 1')).first()
                                  for table in sorted(present)):
        raise fault(store.engine, "holds tables but no plancheck schema revision (not plancheck's history)",
                    "give a database of its own to the history")
    metadata.drop_all(connection, tables=[metadata.tables[t] for t in present if t in metadata.tables])
    if "alembic_version" in present:
        connection.exec_driver_sql("DROP TABLE alembic_version")


def _sqlite_connect(dbapi_connection, _record) -> None:
    """The driver leaves transactions to SQLAlchemy (`_sqlite_begin`): Python's sqlite3 module would otherwise commit
    before every CREATE, so a creation that failed half-way stayed half-built."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    """BEGIN, or for `Store.begin(exclusive=True)` BEGIN IMMEDIATE: the write lock first (waited for up to
    BUSY_SECONDS), so that two processes creating the database at once do not both read it empty."""
    exclusive = connection.get_execution_options().get("plancheck_exclusive")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if exclusive else "BEGIN")
