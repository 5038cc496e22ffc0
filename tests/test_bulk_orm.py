"""models.bulk.mark_written, the one use of SQLAlchemy's internals: a row written by a batched,
version-checked UPDATE ends exactly as the ORM's own flush leaves a row it wrote (same stored
values, clean, at the new version), and a rolled-back savepoint or transaction expires it
back to what the database holds, as it does a flushed row."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select, update
from sqlmodel import Session

from models.bulk import mark_written
from models.tables import Risk

AT = datetime(2026, 12, 18, 10, 30, tzinfo=UTC)
RISK = Risk.__table__  # type: ignore[attr-defined]
COLUMNS = ("state", "formal_notification_on", "inadequate_responses", "updated_at", "version")


def _change(row: Risk) -> None:
    row.state = "awaiting_response"
    row.formal_notification_on = date(2026, 12, 18)
    row.inadequate_responses = 1
    row.updated_at = AT


def _batched(session: Session, row: Risk) -> None:
    """What the engine's batch does: one versioned UPDATE of the changed columns, then mark_written."""
    state = sa_inspect(row)
    read_version = row.version
    changed = {key: state.dict[key] for key in state.committed_state}
    result = session.connection().execute(
        update(RISK)
        .where(RISK.c.id == row.id, RISK.c.version == read_version)
        .values({**changed, "version": read_version + 1})
    )
    assert result.rowcount == 1
    state.dict["version"] = read_version + 1
    mark_written(session, [row])


def _stored(session: Session, row_id: int) -> tuple[object, ...]:
    return tuple(session.connection().execute(select(*(RISK.c[c] for c in COLUMNS)).where(RISK.c.id == row_id)).one())


def test_a_batched_write_leaves_the_row_as_a_flush_does(session: Session, raise_risk: Callable[..., Risk]) -> None:
    by_orm, by_batch = raise_risk("SC"), raise_risk("SC")
    session.commit()
    version = by_orm.version
    assert by_batch.version == version
    _change(by_orm)
    _change(by_batch)
    session.flush([by_orm])  # the plain ORM path: its own version-checked UPDATE
    _batched(session, by_batch)

    assert _stored(session, by_orm.id) == _stored(session, by_batch.id)  # type: ignore[arg-type]
    for row in (by_orm, by_batch):
        state = sa_inspect(row)
        assert row.version == version + 1
        assert not state.modified and not state.committed_state and row not in session.dirty
        assert all(not attr.history.has_changes() for attr in state.attrs)
    session.flush()  # nothing left to write: no second UPDATE, no second bump
    assert by_orm.version == by_batch.version == version + 1
    assert _stored(session, by_batch.id)[-1] == version + 1  # type: ignore[arg-type]
    session.commit()
    session.expire_all()
    assert _stored(session, by_orm.id) == _stored(session, by_batch.id)  # type: ignore[arg-type]


def test_a_rolled_back_savepoint_expires_a_batched_row_as_it_does_a_flushed_one(
    session: Session, raise_risk: Callable[..., Risk]
) -> None:
    by_orm, by_batch = raise_risk("IR"), raise_risk("IR")
    session.commit()
    before = {r.id: (r.state, r.version, r.inadequate_responses) for r in (by_orm, by_batch)}
    savepoint = session.begin_nested()
    _change(by_orm)
    _change(by_batch)
    session.flush([by_orm])
    _batched(session, by_batch)
    savepoint.rollback()
    for row in (by_orm, by_batch):
        assert sa_inspect(row).expired or "state" not in sa_inspect(row).dict
        assert (row.state, row.version, row.inadequate_responses) == before[row.id]


def test_a_rolled_back_transaction_expires_a_batched_row_as_it_does_a_flushed_one(
    session: Session, raise_risk: Callable[..., Risk]
) -> None:
    by_orm, by_batch = raise_risk("IR"), raise_risk("IR")
    session.commit()
    before = {r.id: (r.state, r.version, r.formal_notification_on) for r in (by_orm, by_batch)}
    _change(by_orm)
    _change(by_batch)
    session.flush([by_orm])
    _batched(session, by_batch)
    session.rollback()
    for row in (by_orm, by_batch):
        assert (row.state, row.version, row.formal_notification_on) == before[row.id]
