"""The tamper-evident audit trail: a hash chain over every event, verified end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import AuditEvent, AuditHead, Risk
from states import engine
from states.clock import FixedClock
from tests.factories import person


def _story(session: Session, raise_risk: Callable[..., Risk]) -> list[int]:
    a, b = raise_risk("IR"), raise_risk("SC")
    engine.fire(
        session,
        "risk",
        a.id,
        "send_formal_notification",
        principal=person("nm", "network-manager"),
        clock=FixedClock(date(2026, 12, 18)),
    )
    engine.fire(
        session,
        "risk",
        b.id,
        "withdraw",
        principal=person("nm", "network-manager"),
        clock=FixedClock(date(2026, 12, 18)),
        note="error",
    )
    session.commit()
    return [e.id for e in session.exec(select(AuditEvent).order_by(AuditEvent.id))]  # type: ignore[arg-type,misc]


def test_every_event_is_chained_to_the_one_before(session: Session, raise_risk: Callable[..., Risk]) -> None:
    ids = _story(session, raise_risk)
    events = [session.get(AuditEvent, i) for i in ids]
    assert events[0].prev_hash == "" and all(len(e.hash) == 64 for e in events)  # type: ignore[union-attr]
    assert all(events[n].prev_hash == events[n - 1].hash for n in range(1, len(events)))  # type: ignore[union-attr]
    assert session.get(AuditHead, 1).hash == events[-1].hash  # type: ignore[union-attr]
    assert engine.verify_chain(session) == (len(ids), None, None)


def _raw(db: Engine, sql: str, session: Session | None = None, **params: object) -> None:
    """Change the table behind the engine's back (as an attacker with database access would).

    The test's own session ends its read transaction first: on PostgreSQL, DROP TRIGGER waits
    for every open transaction that has read the table."""
    if session is not None:
        session.rollback()
    with db.begin() as conn:
        for trig in ("audit_event_no_update", "audit_event_no_delete"):
            conn.execute(
                text(f"DROP TRIGGER IF EXISTS {trig}" + (" ON auditevent" if db.dialect.name == "postgresql" else ""))
            )
        conn.execute(text(sql), params)


def test_verify_names_the_first_event_edited_behind_its_back(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    ids = _story(session, raise_risk)
    _raw(db, "UPDATE auditevent SET note = :n WHERE id = :i", session, n="nothing to see", i=ids[2])
    with Session(db) as s:
        checked, broken, problem = engine.verify_chain(s)
    assert (checked, broken.id if broken else None) == (2, ids[2])
    assert problem is not None and f"audit event {ids[2]}" in problem and "changed" in problem


def test_verify_notices_a_deleted_event_and_a_truncated_tail(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    ids = _story(session, raise_risk)
    _raw(db, "DELETE FROM auditevent WHERE id = :i", session, i=ids[1])
    with Session(db) as s:
        _, broken, problem = engine.verify_chain(s)
    assert broken is not None and broken.id == ids[2] and "cut or reordered" in (problem or "")
    _raw(db, "DELETE FROM auditevent WHERE id >= :i", session, i=ids[1])
    with Session(db) as s:
        _, broken, problem = engine.verify_chain(s)
    assert broken is None and "deleted" in (problem or "")


def test_the_chain_covers_the_data_too(db: Engine, session: Session, raise_risk: Callable[..., Risk]) -> None:
    ids = _story(session, raise_risk)
    event = session.get(AuditEvent, ids[1])
    data = dict(event.data)  # type: ignore[union-attr]
    data["deadlines"] = {"response": "2099-01-01"}
    _raw(db, "UPDATE auditevent SET data = :d WHERE id = :i", session, d=json.dumps(data), i=ids[1])
    with Session(db) as s:
        _, broken, _ = engine.verify_chain(s)
    assert broken is not None and broken.id == ids[1]


def test_the_database_refuses_update_and_delete_on_the_audit_table(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    import pytest
    from sqlalchemy.exc import DBAPIError

    ids = _story(session, raise_risk)
    session.rollback()
    for sql in ("UPDATE auditevent SET note = 'x' WHERE id = :i", "DELETE FROM auditevent WHERE id = :i"):
        with pytest.raises(DBAPIError, match="append-only"), db.begin() as conn:
            conn.execute(text(sql), {"i": ids[0]})
    with Session(db) as s:
        assert engine.verify_chain(s) == (len(ids), None, None)
