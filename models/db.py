"""The database engine, built once per URL. ``PEERWATCH_DATABASE_URL`` picks it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine

DEFAULT_DATABASE = Path("var") / "peerwatch.db"


def database_url() -> str:
    """The configured URL; default a SQLite file ``var/peerwatch.db`` under the working dir."""
    url = os.environ.get("PEERWATCH_DATABASE_URL")
    if url:
        return url
    DEFAULT_DATABASE.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_DATABASE}"


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


@cache
def _engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def get_engine(url: str | None = None) -> Engine:
    return _engine_for(url or database_url())


def import_all_tables() -> None:
    """Import every module of the models package, so each table is registered."""
    import importlib
    import pkgutil

    import models

    for mod in pkgutil.iter_modules(models.__path__):
        importlib.import_module(f"models.{mod.name}")


def init_db(url: str | None = None) -> Engine:
    """Create every table that does not exist yet."""
    import_all_tables()

    engine = get_engine(url)
    SQLModel.metadata.create_all(engine)
    return engine


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
