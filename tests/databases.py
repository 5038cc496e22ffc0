"""Which database the suite runs on, and a fresh one per test.

By default every test gets its own SQLite file. With ``PEERWATCH_TEST_DATABASE`` set to a
PostgreSQL URL (``postgresql+psycopg://user@host:port/dbname``, as ``.ci/with-postgres`` sets
it), every test gets its own fresh *schema* in that one database instead: the URL handed to the
code under test carries ``options=-csearch_path=<schema>``, so the engine, Alembic and any
subprocess given the URL all see only that schema.

Creating the ~35 tables costs PostgreSQL 100-400 ms (a file per table and index), so on
PostgreSQL ``db_url`` hands out schemas *already at the head revision* from a pool: after each
test the schema's rows are deleted and its sequences restarted (ids start at 1 again), which
costs a fraction of that, and it goes back to the pool. A schema whose tables or revision a
test changed is dropped instead. ``fresh_url`` still gives a truly empty schema (the migration
tests use it).
"""

from __future__ import annotations

import atexit
import os
import uuid
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

TEST_DATABASE = os.environ.get("PEERWATCH_TEST_DATABASE", "").strip()
ON_POSTGRES = TEST_DATABASE.startswith("postgresql")


def skip_on_postgres(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(ON_POSTGRES, reason=f"SQLite only: {reason}")


@cache
def _admin() -> Engine:
    return create_engine(TEST_DATABASE, poolclass=NullPool, isolation_level="AUTOCOMMIT")


@cache
def _admin_tx() -> Engine:
    return create_engine(TEST_DATABASE, poolclass=NullPool)


def schema_of(url: str) -> str | None:
    marker = "csearch_path%3D"
    return url.split(marker, 1)[1].split("%20", 1)[0] if marker in url else None


def fresh_url(tmp_dir: Path | str) -> str:
    """A URL to a new, empty database (SQLite file under ``tmp_dir``, or a PostgreSQL schema)."""
    if not ON_POSTGRES:
        return f"sqlite:///{tmp_dir}/{uuid.uuid4().hex}.db"
    schema = f"t_{uuid.uuid4().hex[:20]}"
    with _admin().connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in TEST_DATABASE else "?"
    # lock_timeout: a test that waits on a lock its own other connection holds fails in a
    # minute with "canceling statement due to lock timeout" instead of hanging the run
    return f"{TEST_DATABASE}{sep}options={quote(f'-csearch_path={schema} -clock_timeout=60000', safe='')}"


def drop(url: str) -> None:
    """Close the engine's connections to ``url`` and drop its schema (SQLite files are left to tmp_path)."""
    from models.db import dispose_engine

    dispose_engine(url)
    schema = schema_of(url)
    if schema is not None:
        with _admin().connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


_POOL: list[str] = []  # clean schemas at head, ready for the next test


def database_for_test(tmp_dir: Path | str) -> str:
    """A URL for one test: an empty SQLite file, or a clean PostgreSQL schema at head."""
    if not ON_POSTGRES:
        return fresh_url(tmp_dir)
    if _POOL:
        return _POOL.pop()
    from models.db import init_db

    url = fresh_url(tmp_dir)
    init_db(url)
    if not _TRIGGERS:  # what a pristine schema has: a pooled one must still have exactly these
        with _admin().connect() as conn:
            _TRIGGERS.append(_triggers(conn, schema_of(url) or ""))
    return url


_TRIGGERS: list[set[tuple[str, str]]] = []


def _triggers(conn: Any, schema: str) -> set[tuple[str, str]]:
    return {
        (r[0], r[1])
        for r in conn.execute(
            text(
                "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s AND NOT t.tgisinternal"
            ),
            {"s": schema},
        )
    }


def release(url: str) -> None:
    """The test is done with ``url``: on PostgreSQL empty it and pool it (or drop it if the test
    changed its shape); SQLite files are left to tmp_path."""
    from models.db import dispose_engine

    dispose_engine(url)
    schema = schema_of(url)
    if schema is None:
        return
    if not _reset(schema):
        drop(url)
        return
    _POOL.append(url)


def _reset(schema: str) -> bool:
    """Delete every row but the revision, restart the sequences; False if the schema is not as
    init_db left it (other tables or triggers, another revision) or cannot be reset quickly."""
    from sqlmodel import SQLModel

    from models.db import import_all_tables, migration_scripts

    import_all_tables()
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]  # children first
    try:
        with _admin_tx().begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '5s'"))
            present = set(
                conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema}).scalars()
            )
            if present != {*tables, "alembic_version"}:
                return False
            version = set(conn.execute(text(f'SELECT version_num FROM "{schema}".alembic_version')).scalars())
            if version != set(migration_scripts().get_heads()):
                return False
            triggers = _triggers(conn, schema)
            if not _TRIGGERS or triggers != _TRIGGERS[0]:  # a test dropped (or added) a trigger
                return False
            guarded = sorted({table for table, _name in triggers})
            for name in guarded:  # e.g. the audit table refuses DELETE: not for this cleanup
                conn.execute(text(f'ALTER TABLE "{schema}"."{name}" DISABLE TRIGGER USER'))
            conn.execute(text(";".join(f'DELETE FROM "{schema}"."{t}"' for t in tables)))
            for name in guarded:
                conn.execute(text(f'ALTER TABLE "{schema}"."{name}" ENABLE TRIGGER USER'))
            conn.execute(
                text(
                    "SELECT setval(c.oid, 1, false) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind = 'S' AND n.nspname = :s"
                ),
                {"s": schema},
            )
        return True
    except Exception:
        return False


@atexit.register
def _drain_pool() -> None:
    while _POOL:
        try:
            drop(_POOL.pop())
        except Exception:
            return


def snapshot(url: str, tables: tuple[str, ...]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``tables`` (ordered by id), read through a private engine on either database."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
            return {
                t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY id"))]
                for t in tables
                if t in present
            }
    finally:
        engine.dispose()


def dump_all(db: Engine) -> str:
    """Every table's every row as text, on either database (SQLite's iterdump; elsewhere each
    row's values, bytes shown as Python shows them): to look for what must never be stored."""
    if db.dialect.name == "sqlite":
        raw = db.raw_connection()
        try:
            return "\n".join(raw.driver_connection.iterdump())  # type: ignore[union-attr]
        finally:
            raw.close()
    out = []
    with db.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                out.append(f"{table}: {tuple(row)!r}")
    return "\n".join(out)
