"""models.bulk hands batched writes to the driver: each value must be stored exactly as
SQLAlchemy's own executemany stores it (UTC timestamps, JSON, dates), on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import bindparam, insert, text, update
from sqlalchemy.engine import Engine

from models.bulk import execute_many
from models.tables import AuditEvent, Deadline, OutboxMessage

LONDON_SUMMER = datetime(2026, 7, 1, 9, 30, 15, 123456, tzinfo=UTC)


def _raw(db: Engine, table: str, ids: list[int]) -> list[tuple[object, ...]]:
    with db.connect() as conn:  # the stored values as the driver reads them, no type conversion
        return [
            tuple(r)[1:]
            for r in conn.execute(text(f"SELECT * FROM {table} WHERE id IN ({', '.join(map(str, ids))}) ORDER BY id"))
        ]


def _both_ways(
    db: Engine, table: object, rows: list[dict[str, object]]
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with db.begin() as conn:
        conn.execute(insert(table), rows)  # type: ignore[arg-type]
        first = [r[0] for r in conn.execute(text(f"SELECT id FROM {table.name} ORDER BY id"))]  # type: ignore[attr-defined]
        assert execute_many(conn, insert(table), rows) == len(rows)  # type: ignore[arg-type]
        every = [r[0] for r in conn.execute(text(f"SELECT id FROM {table.name} ORDER BY id"))]  # type: ignore[attr-defined]
    return _raw(db, table.name, first), _raw(db, table.name, [i for i in every if i not in first])  # type: ignore[attr-defined]


def test_audit_rows_stored_as_sqlalchemy_stores_them(db: Engine) -> None:
    rows = [
        {
            "kind": "risk",
            "item_id": i,
            "at": LONDON_SUMMER,
            "actor": "Dr Ó Néill",
            "role": "network-manager",
            "trigger": "raise",
            "from_state": None,
            "to_state": "identified",
            "note": "50% of 'rota' gaps",
            "version": i,
            "data": {"deadlines": {"response": "2026-07-15"}, "n": [1, 2.5, None, True]},
            "prev_hash": "a" * 64,
            "hash": "b" * 64,
        }
        for i in (1, 2)
    ]
    ours, theirs = _both_ways(db, AuditEvent.__table__, rows)  # type: ignore[attr-defined]
    assert ours == theirs and len(ours) == 2


def test_outbox_and_deadline_rows_stored_as_sqlalchemy_stores_them(db: Engine) -> None:
    outbox = [
        {
            "idempotency_key": f"k{i}",
            "kind": "risk",
            "item_id": 1,
            "template": "chase",
            "category": "letter",
            "context": '{"today":{"$date":"2026-07-01"}}',
            "subject": None,
            "body_text": None,
            "body_html": None,
            "to": [{"name": "Ann", "email": "ann@trust.nhs.uk"}],
            "cc": [],
            "status": "queued",
            "attempts": 0,
            "last_error": None,
            "created_at": LONDON_SUMMER,
            "next_attempt_at": LONDON_SUMMER,
            "sent_at": None,
            "message_id": None,
        }
        for i in (1, 2)
    ]
    with db.begin() as conn:
        conn.execute(insert(OutboxMessage.__table__), outbox)  # type: ignore[attr-defined]
        assert (
            execute_many(
                conn,
                insert(OutboxMessage.__table__),
                [
                    {**r, "idempotency_key": "x" + str(r["idempotency_key"])}  # type: ignore[attr-defined]
                    for r in outbox
                ],
            )
            == 2
        )
    stored = _raw(db, "outboxmessage", [1, 2, 3, 4])
    assert [r[1:] for r in stored[:2]] == [r[1:] for r in stored[2:]]  # all but the key
    deadlines = [
        {
            "kind": "risk",
            "item_id": i,
            "name": "response",
            "due_on": date(2026, 7, 15),
            "remind_on": date(2026, 7, 13),
            "reminded": False,
            "due_day_notified": False,
            "status": "open",
            "paused_remaining": None,
            "nation": "ENG",
            "created_at": LONDON_SUMMER,
        }
        for i in (1, 2)
    ]
    ours, theirs = _both_ways(db, Deadline.__table__, deadlines)  # type: ignore[attr-defined]
    assert ours == theirs


def test_update_counts_only_the_rows_it_matched_and_applies_constants(db: Engine) -> None:
    table = Deadline.__table__  # type: ignore[attr-defined]
    rows = [
        {
            "kind": "risk",
            "item_id": i,
            "name": "response",
            "due_on": date(2026, 7, 15),
            "remind_on": None,
            "reminded": False,
            "due_day_notified": False,
            "status": "open",
            "paused_remaining": None,
            "nation": "ENG",
            "created_at": LONDON_SUMMER,
        }
        for i in (1, 2, 3)
    ]
    with db.begin() as conn:
        conn.execute(insert(table), rows)
        ids = [r[0] for r in conn.execute(text("SELECT id FROM deadline ORDER BY id"))]
        close = (
            update(table)
            .where(table.c.id == bindparam("d_id"), table.c.status == bindparam("was"))
            .values(status="closed")
        )
        assert (
            execute_many(
                conn,
                close,
                [{"d_id": ids[0], "was": "open"}, {"d_id": ids[1], "was": "paused"}, {"d_id": 10**6, "was": "open"}],
            )
            == 1
        )
        assert [r[0] for r in conn.execute(text("SELECT status FROM deadline ORDER BY id"))] == [
            "closed",
            "open",
            "open",
        ]
