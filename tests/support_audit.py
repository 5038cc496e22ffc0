"""Helpers shared by the audit tests (tests/test_audit_*.py): a short story on the chain, and an
insider's tools: SQL that changes the tables behind the engine's back, as someone holding the
database (not the key file) would write it, the append-only triggers of revision 0002 dropped
first."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from models import AuditEvent, Risk
from states import engine
from states.clock import FixedClock
from tests.factories import person

NM = person("Dr Asha Patel", "network-manager")
TEST_KEY = bytes.fromhex("5e" * 32)  # tests/conftest.py's PEERWATCH_AUDIT_KEY, id test-1


def story(session: Session, raise_risk: Callable[..., Risk]) -> list[int]:
    """Two risks raised, one notified (a deadline opened), one withdrawn: the risks' ids."""
    a, b = raise_risk("IR"), raise_risk("SC")
    day = FixedClock(date(2026, 12, 18))
    engine.fire(session, "risk", a.id, "send_formal_notification", principal=NM, clock=day)  # type: ignore[arg-type]
    engine.fire(session, "risk", b.id, "withdraw", principal=NM, clock=day, note="raised in error")  # type: ignore[arg-type]
    session.commit()
    return [a.id, b.id]  # type: ignore[list-item]


def insider(db: Engine, *statements: tuple[str, dict[str, Any]], session: Session | None = None) -> None:
    """Run SQL behind the engine's back, the audit table's append-only triggers dropped first.

    The test's own session ends its read transaction first: on PostgreSQL, DROP TRIGGER waits
    for every open transaction that has read the table."""
    if session is not None:
        session.rollback()
    with db.begin() as conn:
        on = " ON auditevent" if db.dialect.name == "postgresql" else ""
        for trig in ("audit_event_no_update", "audit_event_no_delete"):
            conn.execute(text(f"DROP TRIGGER IF EXISTS {trig}{on}"))
        for sql, params in statements:
            conn.execute(text(sql), params)


def _canonical(row: Any, keyed: bool) -> bytes:
    """An event's canonical JSON, written out here as the insider would copy it from the source."""
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
    body = {
        "kind": row.kind,
        "item_id": row.item_id,
        "at": at.astimezone(UTC).isoformat(),
        "actor": row.actor,
        "role": row.role,
        "trigger": row.trigger,
        "from": row.from_state,
        "to": row.to_state,
        "note": row.note,
        "version": row.version,
        "data": json.loads(row.data) if isinstance(row.data, str) else row.data,
    }
    if keyed:
        recorded = row.recorded_at
        if isinstance(recorded, datetime) and recorded.tzinfo is None:
            recorded = recorded.replace(tzinfo=UTC)
        body |= {
            "user_id": row.user_id,
            "recorded_at": recorded.astimezone(UTC).isoformat() if recorded is not None else None,
            "key_id": row.key_id,
        }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def rehash(
    db: Engine, *, key: bytes | None = None, unkey: bool = False, forget_who: bool = False, note: str | None = None
) -> None:
    """Rewrite the whole chain as an insider would: re-hash every event with plain SHA-256
    (``key`` None: the project's own unkeyed function) or with ``key``, and reset
    ``audit_head`` to the new last hash. ``unkey`` also blanks ``key_id``; ``forget_who``
    blanks ``user_id`` and ``recorded_at`` (what only keyed events record); ``note``
    rewrites every event's note (the lie the rewrite is for)."""
    with Session(db) as s:
        rows = [s.get(AuditEvent, i) for i in s.execute(text("SELECT id FROM auditevent ORDER BY id")).scalars()]
    sets = ["prev_hash = :p", "hash = :h"]
    sets += ["key_id = NULL"] if unkey else []
    sets += ["user_id = NULL", "recorded_at = NULL"] if forget_who else []
    sets += ["note = :n"] if note is not None else []
    prev, statements = "", []
    for row in rows:
        assert row is not None
        if unkey:
            row.key_id = None
        if forget_who:
            row.user_id, row.recorded_at = None, None
        if note is not None:
            row.note = note
        message = prev.encode() + b"\n" + _canonical(row, row.key_id is not None)
        digest = hashlib.sha256(message).hexdigest() if key is None else hmac.new(key, message, "sha256").hexdigest()
        statements.append(
            (f"UPDATE auditevent SET {', '.join(sets)} WHERE id = :i", {"p": prev, "h": digest, "n": note, "i": row.id})
        )
        prev = digest
    statements.append(("UPDATE audit_head SET hash = :h WHERE id = 1", {"h": prev}))
    insider(db, *statements)
