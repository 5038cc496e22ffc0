"""The database engine, built once per URL. ``PEERWATCH_DATABASE_URL`` picks it."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, SQLModel, create_engine

from models.accounts import ensure_system_account
from models.guards import install_audit_guards

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

DEFAULT_DATABASE = Path("var") / "peerwatch.db"


def database_url() -> str:
    """The configured URL; default a SQLite file ``var/peerwatch.db`` under the working dir."""
    url = os.environ.get("PEERWATCH_DATABASE_URL")
    if url:
        return url
    DEFAULT_DATABASE.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_DATABASE}"


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


_ENGINES: dict[str, Engine] = {}


def _engine_for(url: str) -> Engine:
    engine = _ENGINES.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        engine = _ENGINES.setdefault(url, engine)
    return engine


def dispose_engine(url: str) -> None:
    """Close every pooled connection to ``url`` and forget its engine (tests drop databases)."""
    engine = _ENGINES.pop(url, None)
    if engine is not None:
        engine.dispose()


def get_engine(url: str | None = None) -> Engine:
    return _engine_for(url or database_url())


def import_all_tables() -> None:
    """Import every module of the models package, so each table is registered."""
    for mod in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"models.{mod.name}")


MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """Alembic's configuration, set in code (there is no alembic.ini): the scripts live in
    ``models/migrations``; ``connection``, when given, is used instead of opening one."""
    from alembic.config import Config  # lazy: Alembic only when the schema changes (CLI start-up)

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", (url or database_url()).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def migrate(url: str | None = None, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (default: the newest) with Alembic."""
    from alembic import command  # lazy: Alembic only when the schema changes (CLI start-up)

    command.upgrade(alembic_config(url), revision)


def autogenerate(message: str, rev_id: str | None = None) -> None:
    """Write a new revision in models/migrations/versions with the difference between the
    models and the current head (compared on a scratch SQLite database migrated to head)."""
    from alembic import command  # lazy: Alembic only when the schema changes (CLI start-up)

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/autogenerate.db"
        try:
            migrate(url)
            command.revision(alembic_config(url), message=message, autogenerate=True, rev_id=rev_id)
        finally:
            dispose_engine(url)


def init_db(url: str | None = None) -> Engine:
    """Bring the database to the newest migration and return its engine.

    - A brand-new empty database (no tables at all) is built with ``create_all`` and stamped at
      the head revision: the same schema (tests/test_migrations.py proves the migrations and
      the models agree) in a quarter of the time, which matters when the suite makes hundreds
      of fresh databases.
    - A database with an ``alembic_version`` table is upgraded by the real migrations.
    - A database made before peerwatch had migrations (tables, no ``alembic_version``) gets its
      missing tables, as ``init`` always did, and is stamped at head if it then matches the
      models exactly; otherwise it is refused with the differences named.

    On PostgreSQL an advisory lock makes concurrent callers (several workers starting at
    once) take turns; migrations take the same lock (models/migrations/env.py).
    """
    engine = get_engine(url)
    if _at_head(engine):
        return engine  # the common case: one query; Alembic and the other model modules are not imported
    import_all_tables()
    from alembic.runtime.migration import MigrationContext  # lazy: not on the at-head path (CLI start-up)

    with engine.begin() as conn:
        lock_schema(conn)
        tables = set(inspect(conn).get_table_names())
        if not tables:
            SQLModel.metadata.create_all(conn)
            install_audit_guards(conn)
            ensure_system_account(conn)
            MigrationContext.configure(conn).stamp(migration_scripts(), "head")
            return engine
        if "alembic_version" not in tables:
            _adopt_unversioned(conn)
            return engine
        if set(MigrationContext.configure(conn).get_current_heads()) == set(migration_scripts().get_heads()):
            return engine  # at head already: the common case, one query
    migrate(url)
    return engine


# The newest migration. tests/test_migrations.py checks it against Alembic's own view of the
# scripts, so a new migration without this line updated fails the suite.
HEAD_REVISION = "0014"


def _at_head(engine: Engine) -> bool:
    """True if the database records exactly the newest migration (plain SQL, no Alembic)."""
    try:
        with engine.connect() as conn:
            found = {r[0] for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")}
    except DBAPIError:  # no such table yet: a new or unversioned database
        return False
    return found == {HEAD_REVISION}


def lock_schema(conn: Connection) -> None:
    """On PostgreSQL, hold a transaction-scoped advisory lock for schema changes (no-op on SQLite)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7244901)")


def _adopt_unversioned(conn: Connection) -> None:
    from alembic.autogenerate import compare_metadata  # lazy: Alembic only when the schema changes
    from alembic.runtime.migration import MigrationContext  # lazy: as above

    SQLModel.metadata.create_all(conn)
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    diffs = compare_metadata(context, SQLModel.metadata)
    if diffs:
        listed = "; ".join(str(d) for d in diffs[:5])
        raise RuntimeError(
            f"this database predates peerwatch's migrations and differs from the models "
            f"({len(diffs)} differences: {listed}); start a new database or migrate it by hand"
        )
    install_audit_guards(conn)
    ensure_system_account(conn)
    context.stamp(migration_scripts(), "head")


@cache
def migration_scripts() -> ScriptDirectory:
    """The migration scripts, read once per process."""
    from alembic.script import ScriptDirectory  # lazy: Alembic only when the schema changes

    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def begin_write(session: Session) -> None:
    """Start the session's transaction as a writer.

    On SQLite, ``BEGIN IMMEDIATE`` takes the write lock now (waiting up to busy_timeout), so
    a transaction that reads and then writes can never fail on a snapshot another writer made
    stale (SQLITE_BUSY_SNAPSHOT, where busy_timeout does not apply). On PostgreSQL nothing is
    needed: row versions and ``FOR UPDATE`` decide."""
    conn = session.connection()
    driver = conn.connection.driver_connection
    if isinstance(driver, sqlite3.Connection) and not driver.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
