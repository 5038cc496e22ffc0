"""Replay: ``audit verify`` replays every item's audit events and compares the result with the
item tables (issue 14 item 6). The probe: rows of the item tables edited by SQL left ``audit
verify`` saying "intact"; now each edit is named (kind, id, field, the table's value and the
replayed one), and a database the engine alone wrote replays clean."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import Deadline, Risk
from states import engine
from states.clock import FixedClock
from states.engine.replay import Finding, recorded_dates, replay
from tests.support_audit import NM
from tests.support_cli import cli_env, ok, run


def _on(day: int) -> FixedClock:
    return FixedClock(date(2026, 12, day))


def _world(session: Session, raise_risk: Callable[..., Risk]) -> dict[str, int]:
    """An IR notified, its response deadline paused, resumed and extended; an SC withdrawn; a GC
    in the work programme (its review deadline open)."""
    ir, sc, gc = raise_risk("IR"), raise_risk("SC"), raise_risk("GC")
    steps: list[tuple[int, str, int, dict[str, Any]]] = [
        (ir.id, "send_formal_notification", 14, {}),  # type: ignore[list-item]
        (ir.id, "pause_clock", 15, {}),  # type: ignore[list-item]
        (ir.id, "resume_clock", 17, {}),  # type: ignore[list-item]
        (ir.id, "extend_deadline", 18, {"days": 3}),  # type: ignore[list-item]
        (sc.id, "withdraw", 18, {}),  # type: ignore[list-item]
    ]
    for item_id, trigger, day, params in steps:
        engine.fire(
            session, "risk", item_id, trigger, principal=NM, clock=_on(day), note="for the test", params=params or None
        )
        session.commit()
    return {"ir": ir.id, "sc": sc.id, "gc": gc.id}  # type: ignore[dict-item]


def _open(db: Engine, item_id: int) -> Deadline:
    with Session(db) as s:
        found = s.exec(select(Deadline).where(Deadline.item_id == item_id, Deadline.status == "open")).one()
        return found


def _replay(db: Engine, batch: int = 5000) -> tuple[int, list[Finding]]:
    with Session(db) as s:
        report = replay(s, batch)
    return report.items, report.findings


def _edit(db: Engine, sql: str, **params: Any) -> None:
    """An UPDATE, INSERT or DELETE on an item table behind the engine's back (no trigger guards these)."""
    with db.begin() as conn:
        conn.execute(text(sql), params)


def test_what_the_engine_alone_wrote_replays_clean(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    ids = _world(session, raise_risk)
    with Session(db) as s:
        report = replay(s)
    assert (report.items, report.findings) == (3, [])
    assert report.deadlines == 2  # the IR's moved response deadline and the GC's review
    assert _open(db, ids["ir"]).due_on == date(2027, 1, 7)  # extended three working days (past Christmas)
    assert ok(run(cli_env(), "audit", "verify")).startswith("intact: ")


EDITS = {
    "state": (
        "UPDATE risk SET state = 'closed' WHERE id = :i",
        "ir",
        Finding("risk", 0, "state", "closed", "awaiting_response"),
    ),
    "version": ("UPDATE risk SET version = version + 1 WHERE id = :i", "gc", Finding("risk", 0, "version", 3, 2)),
    "level, state and version together": (  # the version made to match: the state still tells
        "UPDATE risk SET level = 'IR', state = 'identified', version = 3 WHERE id = :i",
        "sc",
        Finding("risk", 0, "state", "identified", "withdrawn"),
    ),
    "deleted": ("DELETE FROM risk WHERE id = :i", "sc", Finding("risk", 0, "row", None, 3)),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_a_row_edited_by_sql_is_named(db: Engine, session: Session, raise_risk: Callable[..., Risk], edit: str) -> None:
    ids = _world(session, raise_risk)
    sql, who, expected = EDITS[edit]
    _edit(db, sql, i=ids[who])
    items, findings = _replay(db)
    assert findings == [Finding(expected.kind, ids[who], expected.field, expected.table, expected.replayed)]
    assert items == (2 if edit == "deleted" else 3)


def test_a_deadline_moved_by_sql_is_named(db: Engine, session: Session, raise_risk: Callable[..., Risk]) -> None:
    ids = _world(session, raise_risk)
    d = _open(db, ids["gc"])
    _edit(db, "UPDATE deadline SET due_on = :d WHERE id = :i", d=date(2099, 12, 31), i=d.id)
    [finding] = _replay(db)[1]
    assert finding == Finding(
        "risk", ids["gc"], f"deadline monitoring_review (id {d.id}) due_on", "2099-12-31", {d.due_on.isoformat()}
    )
    assert finding.line() == (
        f"risk {ids['gc']} deadline monitoring_review (id {d.id}) due_on: the table has '2099-12-31', "
        f"the audit events replay to '{d.due_on.isoformat()}'"
    )
    # the IR's extended deadline moved to a date no event recorded
    ir = _open(db, ids["ir"])
    _edit(db, "UPDATE deadline SET due_on = :d WHERE id = :i", d=date(2027, 3, 1), i=ir.id)
    assert [f.item_id for f in _replay(db)[1]] == [ids["ir"], ids["gc"]]


def test_rows_inserted_by_sql_are_named(db: Engine, session: Session, raise_risk: Callable[..., Risk]) -> None:
    ids = _world(session, raise_risk)
    with Session(db) as s:
        service = s.get(Risk, ids["ir"]).service_id  # type: ignore[union-attr]
    now = datetime(2026, 12, 18, 12, tzinfo=UTC)
    with db.begin() as conn:
        new = conn.execute(
            Risk.__table__.insert().values(  # type: ignore[attr-defined]
                service_id=service,
                level="IR",
                title="inserted by hand",
                identified_on=date(2026, 12, 18),
                state="escalated",
                version=1,
                created_at=now,
                updated_at=now,
                doctors_in_training=False,
                inadequate_responses=0,
            )
        ).inserted_primary_key[0]
        conn.execute(
            Deadline.__table__.insert().values(  # type: ignore[attr-defined]
                kind="risk", item_id=ids["gc"], name="response", due_on=date(2027, 2, 1), status="open", created_at=now
            )
        )
    findings = _replay(db)[1]
    assert Finding("risk", new, "row", "a row", None) in findings
    assert [f.field.split(" (")[0] for f in findings if f.item_id == ids["gc"]] == ["deadline response"]
    assert len(findings) == 2


def test_replay_in_small_batches_finds_the_same(db: Engine, session: Session, raise_risk: Callable[..., Risk]) -> None:
    ids = _world(session, raise_risk)
    _edit(db, "UPDATE risk SET state = 'closed' WHERE id IN (:a, :b)", a=ids["ir"], b=ids["gc"])
    _edit(db, "DELETE FROM risk WHERE id = :i", i=ids["sc"])
    whole = _replay(db)
    for batch in (1, 2):
        assert _replay(db, batch) == whole
    assert sorted(f.item_id for f in whole[1]) == sorted(ids.values())


def test_verify_prints_one_line_per_finding_and_exits_1(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    ids = _world(session, raise_risk)
    _edit(db, "UPDATE risk SET state = 'closed', version = 9 WHERE id = :i", i=ids["ir"])
    proc = run(cli_env(), "audit", "verify")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stdout.splitlines() == [
        f"problem: risk {ids['ir']} state: the table has 'closed', the audit events replay to 'awaiting_response'",
        f"problem: risk {ids['ir']} version: the table has 9, the audit events replay to 6",
        proc.stdout.splitlines()[-1],
    ]
    assert proc.stdout.splitlines()[-1].startswith("2 problem(s) found; verified: ")
    proc = run(cli_env(), "--json", "audit", "verify")
    out = json.loads(proc.stdout)
    assert proc.returncode == 1 and out["ok"] is False and out["chain_problem"] is None
    assert [(f["kind"], f["item_id"], f["field"], f["table"], f["replayed"]) for f in out["replay_findings"]] == [
        ("risk", ids["ir"], "state", "closed", "awaiting_response"),
        ("risk", ids["ir"], "version", 9, 6),
    ]


def test_the_dates_an_event_records() -> None:
    data = {
        "deadlines": {
            "response": "2027-01-04",
            "review": {"due_on": "2027-02-01"},
            "chase": {"from": "2027-01-04", "to": "2027-01-11"},
            "paused": {"paused_with_working_days_left": 3},
        },
        "moved_deadlines": {"response": "2027-01-20"},
    }
    assert sorted(recorded_dates(data)) == [
        ("chase", "2027-01-11"),
        ("response", "2027-01-04"),
        ("response", "2027-01-20"),
        ("review", "2027-02-01"),
    ]
    assert list(recorded_dates(None)) == [] and list(recorded_dates({"deadlines": ["x"]})) == []
