"""The chase sweep: each step once per deadline, on the right working day, in batches."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from models import AuditEvent, Deadline, OutboxMessage, Risk
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from tests.factories import person

NM = "network-manager"


def _notified(session: Session, raise_risk: Callable[..., Risk], level: str = "SC", **kw: object) -> Risk:
    risk = raise_risk(level, **kw)
    engine.fire(
        session,
        "risk",
        risk.id,
        "send_formal_notification",
        principal=person("nm", NM),
        clock=FixedClock(date(2026, 12, 18)),
    )
    session.commit()
    return risk


def _state(db: Engine, risk_id: int) -> str:
    with Session(db) as s:
        row = s.get(Risk, risk_id)
        assert row is not None
        return row.state


def _templates(db: Engine, risk_id: int) -> list[str]:
    with Session(db) as s:
        return list(
            s.exec(
                select(OutboxMessage.template).where(OutboxMessage.item_id == risk_id).order_by(OutboxMessage.id)
            ).all()
        )


def test_unanswered_serious_concern_is_reminded_chased_then_escalated_once_each(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    risk = _notified(session, raise_risk)  # response due Wed 20 Jan 2027, reminder Mon 18 Jan
    timeline = {
        date(2027, 1, 15): ([], "awaiting_response"),
        date(2027, 1, 18): (["reminded"], "awaiting_response"),
        date(2027, 1, 19): ([], "awaiting_response"),
        date(2027, 1, 20): ([], "awaiting_response"),  # due today: not yet overdue
        date(2027, 1, 21): (["no_response"], "chased"),  # chase_response due +5 working days: Thu 28 Jan
        date(2027, 1, 22): ([], "chased"),
        date(2027, 1, 28): ([], "chased"),
        date(2027, 1, 29): (["still_no_response"], "escalated"),
        date(2027, 2, 1): ([], "escalated"),
    }
    for day, (actions, state) in timeline.items():
        for _ in range(2):  # a second sweep on the same day does nothing more
            summary = run_sweep(db, FixedClock(day))
            assert [a["action"] for a in summary.actions] == (actions if _ == 0 else []), day
        assert _state(db, risk.id) == state, day
    letters = _templates(db, risk.id)
    assert letters.count("response_reminder") == 3  # one per Trust recipient (CE, MD, Service Lead)
    assert letters.count("chase") == 5  # CE, MD, SL, copied to NM and RL, one row each for digests
    assert letters.count("escalation") == 1
    with Session(db) as s:
        system = s.exec(select(AuditEvent).where(AuditEvent.item_id == risk.id, AuditEvent.role == "system")).all()
        assert [(e.trigger, e.actor) for e in system] == [
            ("no_response", "peerwatch-sweeper"),
            ("still_no_response", "peerwatch-sweeper"),
        ]


def test_overdue_formal_notification_is_chased_once_without_changing_state(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    risk = raise_risk("IR")  # formal notification due Fri 18 Dec 2026
    assert [a["action"] for a in run_sweep(db, FixedClock(date(2026, 12, 16))).actions] == ["reminded"]
    assert run_sweep(db, FixedClock(date(2026, 12, 18))).actions == []
    assert [a["action"] for a in run_sweep(db, FixedClock(date(2026, 12, 21))).actions] == ["overdue_notice"]
    assert run_sweep(db, FixedClock(date(2026, 12, 22))).actions == []
    assert _state(db, risk.id) == "identified"
    assert _templates(db, risk.id).count("formal_notification_overdue") == 2  # Network Manager and Regional Lead


def _outstanding(db: Engine, risk_id: int) -> list[tuple[str, str]]:
    with Session(db) as s:
        return [(d.name, d.status) for d in engine.pending_deadlines(s, "risk", risk_id)]


def test_a_passed_deadline_stays_outstanding_until_the_item_moves_on(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    """After its overdue letter a deadline is still owed (shown, counted overdue), and the
    transition that answers it closes it: no 'fired' deadline outlives its state."""
    risk = raise_risk("IR")  # formal notification due Fri 18 Dec 2026
    run_sweep(db, FixedClock(date(2026, 12, 21)))
    assert _outstanding(db, risk.id) == [("formal_notification", "fired")]
    engine.fire(
        session,
        "risk",
        risk.id,
        "send_formal_notification",
        principal=person("nm", NM),
        clock=FixedClock(date(2026, 12, 22)),
    )
    session.commit()
    assert _outstanding(db, risk.id) == [("response", "open")]


def test_a_new_deadline_replaces_a_passed_one_of_the_same_name(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    """A general concern's quarterly review passes (overdue letter); recording progress, an
    internal transition, sets the next review and closes the old one."""
    risk = raise_risk("GC")
    ((name, _status),) = _outstanding(db, risk.id)
    with Session(db) as s:
        (due,) = [d.due_on for d in engine.pending_deadlines(s, "risk", risk.id)]
    late = calendar_for("ENG").add_working_days(due, 2)
    run_sweep(db, FixedClock(late))
    assert _outstanding(db, risk.id) == [(name, "fired")]
    engine.fire(
        session,
        "risk",
        risk.id,
        "record_progress",
        principal=person("nm", NM),
        clock=FixedClock(late),
        note="action plan on track",
    )
    session.commit()
    assert _outstanding(db, risk.id) == [(name, "open")]
    with Session(db) as s:
        statuses = sorted(
            str(d.status) for d in s.exec(select(Deadline).where(Deadline.item_id == risk.id, Deadline.kind == "risk"))
        )
    assert statuses == ["closed", "open"]


def test_an_item_answered_before_the_sweep_is_left_alone(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    risk = _notified(session, raise_risk, "IR")
    engine.fire(
        session, "risk", risk.id, "response_adequate", principal=person("nm", NM), clock=FixedClock(date(2027, 1, 5))
    )
    session.commit()
    assert run_sweep(db, FixedClock(date(2027, 1, 7))).actions == []
    assert _state(db, risk.id) == "monitoring"


def test_paused_deadline_is_not_chased(db: Engine, session: Session, raise_risk: Callable[..., Risk]) -> None:
    risk = _notified(session, raise_risk, "IR")
    engine.fire(
        session,
        "risk",
        risk.id,
        "pause_clock",
        principal=person("nm", NM),
        clock=FixedClock(date(2026, 12, 21)),
        note="awaiting inquest",
    )
    session.commit()
    assert run_sweep(db, FixedClock(date(2027, 2, 1))).actions == []
    assert _state(db, risk.id) == "awaiting_response"


def test_one_sweep_handles_many_items_of_mixed_levels(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    ids = [_notified(session, raise_risk, "IR" if i % 2 else "SC").id for i in range(30)]
    gcs = [raise_risk("GC").id for _ in range(5)]
    summary = run_sweep(db, FixedClock(date(2027, 1, 21)))  # IR due 6 Jan, SC due 20 Jan: all passed
    assert sorted(a["id"] for a in summary.actions if a["action"] == "no_response") == sorted(ids)
    assert all(_state(db, i) == "chased" for i in ids)
    assert all(_state(db, i) == "work_programme" for i in gcs)


def test_due_scan_is_an_index_range_scan(db: Engine) -> None:
    query = "SELECT id FROM deadline WHERE status = 'open' AND due_on < '2027-01-01'"
    with db.connect() as conn:
        if db.dialect.name == "postgresql":
            # an empty table is cheaper to read whole: forbid that, so the plan shows whether
            # the index *can* serve the range, with both columns as index conditions
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            # on an empty table the (status, remind_on) index costs the same; set it aside inside
            # this transaction (rolled back) to see whether ix_deadline_status_due serves the range
            conn.execute(text("DROP INDEX ix_deadline_status_remind"))
            # likewise My work's partial indexes (kind, [name,] due_on, item_id) where status != 'closed'
            conn.execute(text("DROP INDEX ix_deadline_open_due"))
            conn.execute(text("DROP INDEX ix_deadline_open_name_due"))
            plan = " ".join(str(r[0]) for r in conn.execute(text(f"EXPLAIN {query}")))
            assert re.search(r"Index Cond: .*status[):a-z ]*= 'open'.* AND \(due_on < ", plan), plan
        else:
            plan = " ".join(str(r) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {query}")))
    assert "ix_deadline_status_due" in plan


def test_deadline_changed_between_scan_and_batch_is_skipped(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], monkeypatch: object
) -> None:
    """An operator acting while the sweep runs wins; the sweep does not act on a closed deadline,
    and says so: the deadline is on the summary's skipped list (an incident, never dropped
    silently), naming the item, the step not taken and why."""
    import states.engine.sweep as sweep

    risk = _notified(session, raise_risk, "IR")
    real = sweep.due_ids

    def scan_then_operator_acts(s: Session, today: date) -> tuple[list[int], list[int], list[int]]:
        found = real(s, today)
        with Session(db) as other:
            engine.fire(
                other, "risk", risk.id, "response_adequate", principal=person("nm", NM), clock=FixedClock(today)
            )
            other.commit()
        return found

    monkeypatch.setattr(sweep, "due_ids", scan_then_operator_acts)  # type: ignore[attr-defined]
    summary = run_sweep(db, FixedClock(date(2027, 1, 7)))
    assert summary.actions == []
    (incident,) = summary.skipped
    assert (incident["kind"], incident["id"], incident["deadline"], incident["step"]) == (
        "risk",
        risk.id,
        "response",
        "no_response",
    )
    assert "changed since the sweep read it" in incident["reason"] and "closed" in incident["reason"]
    assert _state(db, risk.id) == "monitoring"
    with Session(db) as s:
        assert (
            s.exec(
                select(func.count()).select_from(Deadline).where(Deadline.item_id == risk.id, Deadline.status == "open")
            ).one()
            == 1
        )


def test_one_sweep_keys_each_letter_by_its_own_notice(
    db: Engine, session: Session, raise_risk: Callable[..., Risk]
) -> None:
    """Reminders and overdue letters written in the same run each carry their own notice in
    their idempotency key: a reminder keyed as an overdue letter would swallow the real
    overdue letter days later."""
    late = raise_risk("IR", visit=date(2026, 12, 4))  # formal notification due Fri 11 Dec: overdue on Wed 16 Dec
    soon = raise_risk("IR")  # due Fri 18 Dec: reminded on Wed 16 Dec
    first = run_sweep(db, FixedClock(date(2026, 12, 16)))
    assert {(a["id"], a["action"]) for a in first.actions} == {(late.id, "overdue_notice"), (soon.id, "reminded")}
    later = run_sweep(db, FixedClock(date(2026, 12, 21)))
    assert [(a["id"], a["action"]) for a in later.actions] == [(soon.id, "overdue_notice")]
    for risk in (late, soon):
        assert _templates(db, risk.id).count("formal_notification_overdue") == 2, (
            risk.id
        )  # Network Manager, Regional Lead
    with Session(db) as s:
        keys = {
            (m.template, m.idempotency_key.split(":")[3])
            for m in s.exec(select(OutboxMessage).where(OutboxMessage.item_id == soon.id))
        }
    assert ("formal_notification_overdue", "overdue") in keys and all(
        notice == "overdue" for template, notice in keys if template == "formal_notification_overdue"
    ), keys


def test_a_poisoned_item_is_an_incident_and_the_rest_of_its_batch_goes_on(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any failure of one item (not only a refusal) is that item's incident; the others in its
    batch are still reminded, and the poisoned one is tried again by the next sweep."""
    import states.engine.sweep as sweep

    good, bad = raise_risk("IR"), raise_risk("IR")  # both due Fri 18 Dec: reminded Wed 16 Dec
    real = sweep.letter_for

    def poisoned(which: Any, s: Session, row: Any) -> Any:
        if row.id == bad.id:
            raise ValueError("a stored value no letter can hold")
        return real(which, s, row)

    monkeypatch.setattr(sweep, "letter_for", poisoned)
    summary = run_sweep(db, FixedClock(date(2026, 12, 16)))
    assert [(a["id"], a["action"]) for a in summary.actions] == [(good.id, "reminded")]
    (incident,) = summary.skipped
    assert (incident["id"], incident["step"]) == (bad.id, "reminder")
    assert incident["reason"] == "failed: ValueError: a stored value no letter can hold"
    monkeypatch.setattr(sweep, "letter_for", real)
    again = run_sweep(db, FixedClock(date(2026, 12, 16)))
    assert [(a["id"], a["action"]) for a in again.actions] == [(bad.id, "reminded")] and again.skipped == []


def test_a_transition_that_fails_for_one_item_is_its_incident_and_the_others_fire(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch of passed deadlines fails as a whole; each item is then fired on its own, the
    failing one recorded with its reason, the others escalated as due."""
    good, bad = _notified(session, raise_risk), _notified(session, raise_risk)
    real = engine.fire_many

    def broken(s: Session, requests: list[engine.Request], **kw: Any) -> Any:
        if any(r.item_id == bad.id for r in requests):
            raise KeyError("the engine hit a bug on this one")
        return real(s, requests, **kw)

    monkeypatch.setattr(engine, "fire_many", broken)
    summary = run_sweep(db, FixedClock(date(2027, 1, 21)))
    assert [(a["id"], a["action"]) for a in summary.actions] == [(good.id, "no_response")]
    (incident,) = summary.skipped
    assert (incident["id"], incident["deadline"], incident["step"]) == (bad.id, "response", "no_response")
    assert incident["reason"].startswith("failed: KeyError") and _state(db, bad.id) == "awaiting_response"
    assert _state(db, good.id) == "chased"


def test_the_sweep_acts_as_the_system_account_and_a_database_failure_stops_it(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from models.accounts import SYSTEM_USER_ID
    from states.roles import SYSTEM, SYSTEM_ACTOR

    risk = _notified(session, raise_risk)
    run_sweep(db, FixedClock(date(2027, 1, 21)))
    with Session(db) as s:
        last = s.exec(select(AuditEvent).where(AuditEvent.item_id == risk.id).order_by(AuditEvent.id.desc())).first()  # type: ignore[union-attr]
    assert last is not None and (last.trigger, last.user_id, last.actor, last.role) == (
        "no_response",
        SYSTEM_USER_ID,
        SYSTEM_ACTOR,
        SYSTEM,
    )

    def gone(*_a: Any, **_k: Any) -> Any:
        raise OperationalError("SELECT", {}, Exception("the database went away"))

    other = _notified(session, raise_risk)
    monkeypatch.setattr(engine, "fire_many", gone)
    with pytest.raises(OperationalError):
        run_sweep(db, FixedClock(date(2027, 1, 21)))
    assert _state(db, other.id) == "awaiting_response"


def test_a_milestone_done_after_the_scan_is_an_incident_not_a_silent_skip(
    db: Engine, session: Session, raise_risk: Callable[..., Risk], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The milestone pass reads its ids, then each batch; one marked done in between is named
    on the summary (and its letter is not sent), the other is chased."""
    import states.engine.milestone_chase as chase
    from states.services import milestones

    risk = raise_risk("SC")
    clock = FixedClock(date(2026, 12, 14))
    nm = person("Jo Smith", NM)
    done, chased = (
        milestones.add(session, risk.id, text=text, working_days=5, principal=nm, clock=clock).row
        for text in ("Rota extended", "Supervision agreed")
    )
    session.commit()
    real = chase.begin_write

    def someone_marks_one_done(s: Session) -> None:
        with Session(db) as other:
            milestones.mark_done(other, done.id, principal=nm, clock=FixedClock(date(2026, 12, 22)))  # type: ignore[arg-type]
            other.commit()
        real(s)

    monkeypatch.setattr(chase, "begin_write", someone_marks_one_done)
    summary = run_sweep(db, FixedClock(date(2026, 12, 23)))
    assert [a["milestone"] for a in summary.actions if a["action"] == "milestone_chased"] == [chased.id]
    (incident,) = summary.skipped
    assert (incident["kind"], incident["id"], incident["risk_id"], incident["step"]) == (
        "milestone",
        done.id,
        risk.id,
        "chase_milestone",
    )
    assert incident["reason"] == f"milestone {done.id} changed since the sweep read it: it is now done on 2026-12-22"
