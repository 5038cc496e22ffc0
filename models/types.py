"""Column types shared by the tables."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as UTC; always hand back aware UTC (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} refused: store timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """Wall-clock UTC now, for row bookkeeping only (rules use the injectable clock)."""
    return datetime.now(UTC)


class Table(SQLModel):
    """The base of every table: pydantic builds a table's validators and serialisers the first
    time it needs them, not when the module is imported (a one-command CLI process imports
    every table and uses two or three)."""

    # A plain dict, merged by pydantic into SQLModel's own config; mypy checks its keys against
    # the type SQLModel declares for ``model_config`` (no import from sqlmodel's private modules).
    model_config = {"defer_build": True}


# The largest id a row can have on every database peerwatch runs on: PostgreSQL's ``integer``
# (the type of the tables' primary and foreign keys), 2**31 - 1. A larger id typed at any entry
# point names no row: it is looked up as "not found", never sent to the database to overflow.
MAX_ROW_ID = 2**31 - 1


def is_row_id(value: int) -> bool:
    """Could a row have this id? (Positive and within every database's integer.)"""
    return 0 < value <= MAX_ROW_ID
