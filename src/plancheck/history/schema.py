"""The history's schema: which revision a database is at, the check before a run is recorded, and creating or
migrating it (Alembic, `migrations/`) in one transaction.

A creation or an upgrade holds the database's write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory
lock) and looks at the revision again once it has it, so two first runs started together make one database.
A database that holds only the empty tables of a creation that did not finish (plancheck before creations
were one transaction) is created again; tables of anything else are refused, never dropped.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

import sqlalchemy as sa

from plancheck.history.faults import fault
from plancheck.history.tables import metadata

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from sqlalchemy.engine import Connection, Engine


class Store(Protocol):
    """What the schema's checks and upgrades need of a history database (history/store.py's `Store`), named here so
    that this module does not import the one that imports it."""

    engine: Engine

    def connect(self) -> AbstractContextManager[Connection]: ...

    def begin(self) -> AbstractContextManager[Connection]: ...

    def revision(self) -> str | None: ...

#: The schema revisions this plancheck knows, oldest first, and the one it reads and writes (a test holds them equal
#: to migrations/). Named here so that a run checks its database without importing Alembic (a tenth of a second).
REVISIONS = ("0001", "0002", "0003", "0004")
HEAD = REVISIONS[-1]

#: An SQLite history up to this size is checked whole before a run is recorded (`verify`); a larger one, all but
#: the findings of earlier runs. `PRAGMA quick_check` of a 690 MB file took 1.2-1.5 s here (12 s from a cold cache).
VERIFY_WHOLE_BYTES = 256 * 1024 * 1024

#: Tables that grow with every night, which a history above VERIFY_WHOLE_BYTES is not checked for before a run.
GROWING = frozenset({"findings", "resolutions"})


def _alembic_config(connection: Connection | None):
    from alembic.config import Config
    config = Config()
    config.set_main_option("script_location", "plancheck.history:migrations")
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration, as Alembic finds it in `migrations/`."""
    from alembic.script import ScriptDirectory
    return ScriptDirectory.from_config(_alembic_config(None)).get_current_head()


def revision(store: Store, connection: Connection) -> str | None:
    """The revision Alembic recorded, None in a database it never migrated; one this plancheck does not know (a newer
    plancheck's) is refused."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(versions) > 1:
        raise fault(store.engine, f"has several schema heads {versions}", "restore it from a backup")
    if versions and versions[0] not in REVISIONS:
        raise fault(store.engine, f"was written by a newer plancheck (schema revision {versions[0]}; this one knows "
                    f"up to {HEAD})", "upgrade plancheck")
    return versions[0] if versions else None


def verify(store: Store) -> None:
    """Before a run is recorded into it: an SQLite file is checked (`PRAGMA quick_check`) and may be written (its
    write lock taken and given back), so that a damaged, read-only or locked file stops the run before the work
    rather than in the middle of it. A file above VERIFY_WHOLE_BYTES is checked but for the GROWING tables, whose
    damage the run meets when it reads them (exit 2 all the same, outputs kept)."""
    if store.engine.dialect.name != "sqlite":
        return
    with store.connect() as connection:
        if _size(store.engine.url.database) <= VERIFY_WHOLE_BYTES:
            found = connection.exec_driver_sql("PRAGMA quick_check").scalars().all()
        else:
            present = connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars()
            found = [answer for table in ["sqlite_master", *sorted(set(present) - GROWING)]
                     for answer in connection.exec_driver_sql(f'PRAGMA quick_check("{table}")').scalars()]
            found = [answer for answer in found if answer != "ok"] or ["ok"]
        if found != ["ok"]:
            raise fault(store.engine, f"is damaged ({found[0] if found else 'no answer'})",
                        "restore it from a backup, or move it aside to start a new history")
        connection.rollback()
        raw = connection.connection.driver_connection
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("ROLLBACK")


def upgrade(store: Store, target: str = "head", verified: bool = False) -> tuple[str | None, str | None]:
    """Migrate in place, in one transaction; the revisions before and after. With `verified`, `verify` first."""
    from alembic import command
    from alembic.util.exc import CommandError
    before = store.revision()
    if verified:
        verify(store)
    try:
        with store.begin(exclusive=True) as connection:  # two first runs at once: the second finds it made
            now = revision(store, connection)
            if now is None:
                _clear_unfinished(store, connection)
            if not (target == "head" and now == HEAD):
                command.upgrade(_alembic_config(connection), target)
    except CommandError as exc:
        raise fault(store.engine, f"cannot be migrated ({exc})", "see `plancheck db upgrade --help`") from None
    return before, store.revision()


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
