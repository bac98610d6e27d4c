"""The run-history store: a database reached through SQLAlchemy Core, migrated by Alembic.

`--db URL` (or `PLANCHECK_DB`) names it; the default is `history.sqlite` under the user's data
directory. A plain path is an SQLite file; `postgresql://` URLs go through psycopg 3. SQLite runs
in WAL mode, so reading the history (`plancheck runs`) never waits for a batch that is writing.

A new, empty database is created at the current schema when first used; a database made by an
older plancheck must be upgraded first with `plancheck db upgrade` (recording refuses it, exit 2,
rather than write into a schema it does not know).
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
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
from plancheck.history.tables import acks, findings, resolutions, run_plan_years, run_years, runs


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


#: The schema revision this plancheck reads and writes: its newest migration (a test holds the two equal).
#: Named here so that a run checks its database without importing Alembic (a tenth of a second).
HEAD = "0004"


def head_revision() -> str:
    """The newest migration, as Alembic finds it in `migrations/`."""
    from alembic.script import ScriptDirectory
    config = _alembic_config(None)  # type: ignore[arg-type]
    return ScriptDirectory.from_config(config).get_current_head()


class Store:
    """One history database."""

    def __init__(self, url: str | None = None):
        self.url = normalize_url(url or default_url())
        try:
            if self.url.startswith("sqlite:///"):
                Path(self.url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = sa.create_engine(self.url)
        except Exception as exc:  # a bad URL, an unknown driver, a directory that cannot be made
            raise InputError(Problem("--db", "", f"cannot open the history database: {exc}")) from None
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)

    def _problem(self, exc: Exception) -> InputError:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return InputError(Problem("--db", "", f"history database {self.engine.url.render_as_string()}: {first}"))

    def revision(self) -> str | None:
        """The schema revision Alembic recorded (its `alembic_version` table), None in a database it never migrated."""
        try:
            with self.engine.connect() as connection:
                if not sa.inspect(connection).has_table("alembic_version"):
                    return None
                versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        except sa.exc.SQLAlchemyError as exc:
            raise self._problem(exc) from None
        if len(versions) > 1:
            raise InputError(Problem("--db", "", f"the history database has several schema heads {versions}"))
        return versions[0] if versions else None

    def upgrade(self, target: str = "head") -> tuple[str | None, str | None]:
        """Migrate in place; the revisions before and after."""
        from alembic import command
        before = self.revision()
        try:
            with self.engine.begin() as connection:
                command.upgrade(_alembic_config(connection), target)
        except sa.exc.SQLAlchemyError as exc:
            raise self._problem(exc) from None
        return before, self.revision()

    def ready(self) -> Store:
        """Create a new database at the current schema; refuse one at an older (or unknown) revision."""
        current, head = self.revision(), HEAD
        if current is None:
            with self.engine.connect() as connection:
                if sa.inspect(connection).get_table_names():
                    raise InputError(Problem("--db", "", "the database holds tables that are not plancheck's history"))
            self.upgrade()
        elif current != head:
            raise InputError(Problem("--db", "", f"the history database is at schema revision {current}, this "
                                     f"plancheck needs {head}: run `plancheck db upgrade`"))
        return self

    # -- reading ---------------------------------------------------------------------------------

    def runs(self, limit: int | None = None, scope: str | None = None, completed: bool = True,
             up_to: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first (only those up to run `up_to` when given)."""
        query = sa.select(runs).order_by(runs.c.id.desc())
        if up_to is not None:
            query = query.where(runs.c.id <= up_to)
        if completed:
            query = query.where(runs.c.ended_at.is_not(None))
        if scope:
            query = query.where(runs.c.scope == scope)
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def run(self, run_id: int) -> dict[str, Any]:
        with self.engine.connect() as connection:
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
        with self.engine.connect() as connection:
            return connection.execute(query).scalar()

    def last_covering(self, scope: str, before: int) -> dict[tuple[str, int], int]:
        """(plan, year) -> the last completed run of the scope before run `before` that covered that plan's year
        (plan "*": a run recorded before plans were kept, which covered the year for every plan)."""
        query = (sa.select(run_plan_years.c.plan_id, run_plan_years.c.year, sa.func.max(run_plan_years.c.run_id))
                 .join(runs, runs.c.id == run_plan_years.c.run_id)
                 .where(runs.c.scope == scope, runs.c.ended_at.is_not(None), runs.c.id < before)
                 .group_by(run_plan_years.c.plan_id, run_plan_years.c.year))
        with self.engine.connect() as connection:
            return {(plan, year): run for plan, year, run in connection.execute(query)}

    def findings(self, run_id: int, by_rule: bool = False) -> Iterator[dict[str, Any]]:
        """A run's findings in the order they were recorded (or by rule), each with its event decoded."""
        order = (findings.c.rule, findings.c.id) if by_rule else (findings.c.id,)
        query = sa.select(findings).where(findings.c.run_id == run_id).order_by(*order)
        with self.engine.connect() as connection:
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
        with self.engine.connect() as connection:
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
        with self.engine.connect() as connection:
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
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def run_years(self, run_id: int) -> list[dict[str, Any]]:
        """The years a run over dated data covered, each with the run it was compared with and what it resolved."""
        query = sa.select(run_years).where(run_years.c.run_id == run_id).order_by(run_years.c.year)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def active_acks(self, on: dt.date) -> dict[str, set[str]]:
        """fingerprint -> the figures hashes acknowledged for it, for acknowledgements still in force on `on`."""
        query = sa.select(acks.c.fingerprint, acks.c.figures).where(sa.or_(acks.c.until.is_(None), acks.c.until >= on))
        active: dict[str, set[str]] = {}
        with self.engine.connect() as connection:
            for fp, figures in connection.execute(query):
                active.setdefault(fp, set()).add(figures)
        return active

    def acks(self) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(sa.select(acks).order_by(acks.c.id))]

    # -- writing ---------------------------------------------------------------------------------

    def acknowledge(self, fingerprint: str, reason: str, until: dt.date | None, by: str | None = None) -> dict[str, Any]:
        """Acknowledge the finding whose fingerprint is (or starts with, 8 characters at least) `fingerprint`,
        at the figures of its latest recorded occurrence."""
        if len(fingerprint) < 8:
            raise InputError(Problem("FINGERPRINT", "", "give at least 8 characters of the fingerprint",
                                     got=fingerprint))
        query = (sa.select(findings.c.fingerprint, findings.c.figures, findings.c.rule, findings.c.plan_id,
                           findings.c.employee_id, findings.c.year)
                 .where(findings.c.fingerprint.startswith(fingerprint.lower()))
                 .order_by(findings.c.id.desc()))
        with self.engine.begin() as connection:
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


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
