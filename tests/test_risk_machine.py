"""The risk machine, table-driven: every allowed (state, trigger) and every refused one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlmodel import Session, func, select

from models import AuditEvent, Deadline, OutboxMessage, Risk
from states import engine
from states.clock import FixedClock
from states.errors import (
    BadDate,
    GuardRefused,
    InvalidInput,
    InvalidTrigger,
    MissingActor,
    PermissionDenied,
    StaleVersion,
)
from states.machines.risk import RiskState
from states.machines.spec import get_spec
from tests.factories import person

S = RiskState
NM = "network-manager"
SPEC = get_spec("risk")

# (source state, trigger, role, params/note setup, expected destination, letters expected)
TABLE: list[tuple[str, str, str, dict[str, Any], str, set[str]]] = [
    (S.IDENTIFIED, "send_formal_notification", NM, {}, S.AWAITING_RESPONSE, {"formal_notification"}),
    (S.IDENTIFIED, "send_formal_notification", "regional-lead", {}, S.AWAITING_RESPONSE, {"formal_notification"}),
    (S.AWAITING_RESPONSE, "no_response", "system", {}, S.CHASED, {"chase"}),
    (S.FURTHER_RESPONSE_REQUESTED, "no_response", "system", {"inadequate": 1}, S.CHASED, {"chase"}),
    (S.CHASED, "still_no_response", "system", {}, S.ESCALATED, {"escalation"}),
    (S.AWAITING_RESPONSE, "response_adequate", NM, {}, S.MONITORING, {"response_accepted"}),
    (S.CHASED, "response_adequate", NM, {}, S.MONITORING, {"response_accepted"}),
    (S.FURTHER_RESPONSE_REQUESTED, "response_adequate", NM, {"inadequate": 1}, S.MONITORING, {"response_accepted"}),
    (S.ESCALATED, "response_adequate", NM, {}, S.MONITORING, {"response_accepted"}),
    (S.AWAITING_RESPONSE, "response_inadequate", NM, {}, S.FURTHER_RESPONSE_REQUESTED, {"inadequate_response"}),
    (S.CHASED, "response_inadequate", NM, {}, S.FURTHER_RESPONSE_REQUESTED, {"inadequate_response"}),
    (S.FURTHER_RESPONSE_REQUESTED, "response_inadequate", NM, {"inadequate": 1}, S.ESCALATED, {"escalation"}),
    (S.CHASED, "response_inadequate", NM, {"inadequate": 1}, S.ESCALATED, {"escalation"}),
    # the Trust's formal response in the portal (issue 16); judged from response_received
    *[
        (s, "submit_response", role, {"params": {"file": []}}, S.RESPONSE_RECEIVED, {"response_received"})
        for s, role in (
            (S.AWAITING_RESPONSE, "service-lead"),
            (S.CHASED, "chief-executive"),
            (S.FURTHER_RESPONSE_REQUESTED, "medical-director"),
            (S.ESCALATED, "service-lead"),
        )
    ],
    (S.RESPONSE_RECEIVED, "response_adequate", NM, {}, S.MONITORING, {"response_accepted"}),
    (S.RESPONSE_RECEIVED, "response_inadequate", NM, {}, S.FURTHER_RESPONSE_REQUESTED, {"inadequate_response"}),
    (S.RESPONSE_RECEIVED, "response_inadequate", NM, {"inadequate": 1}, S.ESCALATED, {"escalation"}),
    (S.MONITORING, "record_progress", "network-office", {"note": "milestone 1 met"}, S.MONITORING, set()),
    (S.WORK_PROGRAMME, "record_progress", NM, {"note": "on track"}, S.WORK_PROGRAMME, set()),
    (S.AWAITING_RESPONSE, "rescore", NM, {"params": {"impact": 2, "likelihood": 3}}, S.AWAITING_RESPONSE, set()),
    (S.ESCALATED, "report_to_national", NM, {}, S.ESCALATED, {"national_report"}),
    *[
        (s, "regrade", NM, {"note": "appeal upheld", "params": {"level": "IR"}}, s, set())
        for s in (
            S.IDENTIFIED,
            S.AWAITING_RESPONSE,
            S.CHASED,
            S.FURTHER_RESPONSE_REQUESTED,
            S.RESPONSE_RECEIVED,
            S.ESCALATED,
        )
    ],
    (S.MONITORING, "close", NM, {"note": "action plan complete"}, S.CLOSED, set()),
    (S.WORK_PROGRAMME, "close", "regional-lead", {"note": "resolved"}, S.CLOSED, set()),
    *[
        (s, "withdraw", NM, {"note": "raised in error"}, S.WITHDRAWN, {"withdrawal"})
        for s in (
            S.IDENTIFIED,
            S.AWAITING_RESPONSE,
            S.CHASED,
            S.FURTHER_RESPONSE_REQUESTED,
            S.RESPONSE_RECEIVED,
            S.ESCALATED,
            S.MONITORING,
            S.WORK_PROGRAMME,
        )
    ],
]


def _counts(session: Session) -> tuple[int, int, int]:
    return (
        session.exec(select(func.count()).select_from(AuditEvent)).one(),
        session.exec(select(func.count()).select_from(OutboxMessage)).one(),
        session.exec(select(func.count()).select_from(Deadline)).one(),
    )


def _put_in(session: Session, risk: Risk, state: str, inadequate: int = 0) -> Risk:
    """Test setup shortcut: place a raised risk in a given state."""
    risk.state, risk.inadequate_responses = str(state), inadequate
    if risk.level == "GC" and state != S.WORK_PROGRAMME:
        risk.level = "SC"
    session.add(risk)
    session.commit()
    return risk


@pytest.mark.parametrize(
    ("source", "trigger", "role", "setup", "dest", "letters"), TABLE, ids=[f"{t[0]}-{t[1]}-{t[2]}" for t in TABLE]
)
def test_allowed_transitions(
    session: Session,
    raise_risk: Callable[..., Risk],
    source: str,
    trigger: str,
    role: str,
    setup: dict[str, Any],
    dest: str,
    letters: set[str],
) -> None:
    risk = _put_in(session, raise_risk("SC"), source, setup.get("inadequate", 0))
    before_version = risk.version
    before_letters = set(session.exec(select(OutboxMessage.template).where(OutboxMessage.item_id == risk.id)).all())
    out = engine.fire(
        session,
        "risk",
        risk.id,
        trigger,
        principal=person("tester", role),
        clock=FixedClock(date(2026, 12, 21)),
        note=setup.get("note"),
        params=setup.get("params"),
    )
    session.commit()
    assert out.row.state == dest
    assert out.row.version == before_version + 1
    assert (out.event.from_state, out.event.to_state, out.event.trigger, out.event.actor, out.event.role) == (
        source,
        dest,
        trigger,
        "tester",
        role,
    )
    queued = (
        set(session.exec(select(OutboxMessage.template).where(OutboxMessage.item_id == risk.id)).all()) - before_letters
    )
    assert queued == letters


ALLOWED = {(str(src), trig) for src, trig, *_ in TABLE} | {(str(S.NEW), "raise")}
ALLOWED |= {
    (s.value, t)
    for s in S
    if s.value not in SPEC.terminal and s != S.NEW
    for t in ("pause_clock", "resume_clock", "extend_deadline")
}
ALLOWED |= {(s, "rescore") for s in [x.value for x in S] if s not in SPEC.terminal and s != S.NEW}
REFUSED = [(s.value, t) for s in S for t in SPEC.triggers() if (s.value, t) not in ALLOWED]


def test_table_covers_machine() -> None:
    """Every pair the machine allows is in the table above, and vice versa."""
    machine_pairs = {(s.value, t) for s in S for t in SPEC.allowed_from(s.value)}
    assert machine_pairs == ALLOWED


@pytest.mark.parametrize(("state", "trigger"), REFUSED, ids=[f"{s}-{t}" for s, t in REFUSED])
def test_refused_pairs_change_nothing(
    session: Session, raise_risk: Callable[..., Risk], state: str, trigger: str
) -> None:
    risk = _put_in(session, raise_risk("SC"), state)
    version, counts = risk.version, _counts(session)
    with pytest.raises(InvalidTrigger, match=f"'{state}'"):
        engine.fire(
            session,
            "risk",
            risk.id,
            trigger,
            principal=person("tester", NM),
            clock=FixedClock(date(2026, 12, 21)),
            note="n",
        )
    session.rollback()
    fresh = session.get(Risk, risk.id)
    assert fresh is not None and (fresh.state, fresh.version) == (state, version)
    assert _counts(session) == counts


def _refused(session: Session, risk_id: int, exc: type[Exception], match: str, **kw: Any) -> None:
    counts = _counts(session)
    args = {"principal": person("tester", NM), "clock": FixedClock(date(2026, 12, 18)), **kw}
    trigger = args.pop("trigger", "send_formal_notification")
    with pytest.raises(exc, match=match):
        engine.fire(session, "risk", risk_id, trigger, **args)
    session.rollback()
    assert _counts(session) == counts
    row = session.get(Risk, risk_id)
    assert row is not None and row.state == "identified" and row.version == 2


def test_operator_errors_name_the_problem_and_change_nothing(session: Session, raise_risk: Callable[..., Risk]) -> None:
    risk = raise_risk("IR")
    _refused(session, risk.id, MissingActor, "nobody is identified as acting", principal=None)
    # a name is not a principal: nobody is identified
    _refused(session, risk.id, MissingActor, "nobody is identified as acting", principal="tester")
    _refused(session, risk.id, PermissionDenied, "role 'auditor' may not fire", principal=person("a", "auditor"))
    _refused(session, risk.id, PermissionDenied, "needs one of", principal=person("o", "network-office"))
    with pytest.raises(PermissionDenied, match="does not hold the role 'cleaner'"):
        person("tester", NM).acting_as("cleaner")  # --role naming a role the account lacks
    _refused(session, risk.id, StaleVersion, "version 2, not 1", expected_version=1)
    _refused(session, risk.id, BadDate, "before risk .* last change", clock=FixedClock(date(2026, 12, 10)))
    _refused(session, risk.id, InvalidTrigger, "unknown trigger 'explode'", trigger="explode")
    _refused(session, risk.id, InvalidInput, "needs a reason", trigger="withdraw", note=" ")
    with pytest.raises(Exception, match="not found"):
        engine.fire(session, "risk", 999, "close", principal=person("a", NM), clock=FixedClock(date(2026, 12, 18)))


def test_unknown_level_is_refused_by_the_guards(session: Session, services: dict[str, int], clock: FixedClock) -> None:
    row = Risk(
        service_id=next(iter(services.values())), level="XX", title="t", identified_on=date(2026, 12, 11), state="new"
    )
    with pytest.raises(GuardRefused, match="is_ir_or_sc"):
        engine.create(session, "risk", row, "raise", principal=person("a", NM), clock=clock)


def test_score_outside_the_matrix_is_refused(session: Session, raise_risk: Callable[..., Risk]) -> None:
    with pytest.raises(InvalidInput, match="1-6"):
        raise_risk("SC", impact=7, likelihood=2)


@pytest.mark.parametrize(
    ("level", "formal_due", "sent_on", "response_due", "remind_on"),
    [
        ("IR", date(2026, 12, 18), date(2026, 12, 18), date(2027, 1, 6), date(2027, 1, 4)),  # DOMAIN.md example
        ("SC", date(2026, 12, 18), date(2026, 12, 18), date(2027, 1, 20), date(2027, 1, 18)),
        ("SC", date(2026, 12, 18), date(2026, 12, 16), date(2027, 1, 18), date(2027, 1, 14)),
    ],
)
def test_deadlines_come_from_the_working_day_calendar(
    session: Session,
    raise_risk: Callable[..., Risk],
    level: str,
    formal_due: date,
    sent_on: date,
    response_due: date,
    remind_on: date,
) -> None:
    risk = raise_risk(level)  # visit Fri 11 Dec 2026
    (formal,) = engine.pending_deadlines(session, "risk", risk.id)
    assert (formal.name, formal.due_on) == ("formal_notification", formal_due)
    engine.fire(
        session, "risk", risk.id, "send_formal_notification", principal=person("nm", NM), clock=FixedClock(sent_on)
    )
    session.commit()
    (response,) = engine.pending_deadlines(session, "risk", risk.id)
    assert (response.name, response.due_on, response.remind_on) == ("response", response_due, remind_on)
    assert formal.status == "closed"


def test_general_concern_goes_to_the_work_programme_with_quarterly_review(
    session: Session, raise_risk: Callable[..., Risk]
) -> None:
    risk = raise_risk("GC")
    assert risk.state == "work_programme"
    (review,) = engine.pending_deadlines(session, "risk", risk.id)
    assert review.name == "monitoring_review" and review.due_on == date(2027, 3, 12)  # 13 weeks
    engine.fire(
        session,
        "risk",
        risk.id,
        "record_progress",
        principal=person("nm", NM),
        clock=FixedClock(date(2027, 3, 10)),
        note="Q4 update",
    )
    session.commit()
    (nxt,) = engine.pending_deadlines(session, "risk", risk.id)
    assert nxt.due_on == date(2027, 6, 9)


def _letters(session: Session, risk_id: int) -> list[str]:
    return list(
        session.exec(
            select(OutboxMessage.template).where(OutboxMessage.item_id == risk_id).order_by(OutboxMessage.id)
        ).all()
    )


@pytest.mark.parametrize(
    ("impact", "likelihood", "asct"), [(4, 4, True), (3, 4, False), (6, 2, False), (5, 3, True), (None, None, False)]
)
def test_score_above_12_notifies_the_asct(
    session: Session, raise_risk: Callable[..., Risk], impact: int | None, likelihood: int | None, asct: bool
) -> None:
    risk = raise_risk("SC", impact=impact, likelihood=likelihood)
    assert ("asct_notice" in _letters(session, risk.id)) is asct


def test_rescore_crossing_the_threshold_notifies_once(session: Session, raise_risk: Callable[..., Risk]) -> None:
    risk = raise_risk("IR", impact=2, likelihood=2)
    day = FixedClock(date(2026, 12, 14))
    engine.fire(
        session,
        "risk",
        risk.id,
        "rescore",
        principal=person("nm", NM),
        clock=day,
        params={"impact": 5, "likelihood": 5},
    )
    engine.fire(
        session,
        "risk",
        risk.id,
        "rescore",
        principal=person("nm", NM),
        clock=day,
        params={"impact": 6, "likelihood": 5},
    )
    session.commit()
    assert _letters(session, risk.id).count("asct_notice") == 1
    with pytest.raises(InvalidInput):
        engine.fire(
            session,
            "risk",
            risk.id,
            "rescore",
            principal=person("nm", NM),
            clock=day,
            params={"impact": 0, "likelihood": 5},
        )


@pytest.mark.parametrize(("dit", "expected"), [(True, ["escalation", "tpd_ra"]), (False, ["escalation"])])
def test_second_inadequate_response_escalates_to_commissioning_lead_and_cqc(
    session: Session, raise_risk: Callable[..., Risk], dit: bool, expected: list[str]
) -> None:
    risk = raise_risk("SC", doctors_in_training=dit)
    for day, trig in [
        (date(2026, 12, 18), "send_formal_notification"),
        (date(2027, 1, 14), "response_inadequate"),
        (date(2027, 1, 26), "response_inadequate"),
    ]:
        engine.fire(session, "risk", risk.id, trig, principal=person("nm", NM), clock=FixedClock(day))
    session.commit()
    assert risk.state == "escalated" and risk.inadequate_responses == 2
    letters = session.exec(
        select(OutboxMessage).where(
            OutboxMessage.item_id == risk.id, OutboxMessage.created_at >= FixedClock(date(2027, 1, 26)).now()
        )
    ).all()
    assert sorted(m.template for m in letters) == sorted(expected)
    escalation = next(m for m in letters if m.template == "escalation")
    assert {p["role"] for p in escalation.to} == {"commissioning-lead", "cqc"}
    assert engine.pending_deadlines(session, "risk", risk.id) == []


def test_regrade_moves_the_open_response_deadline(session: Session, raise_risk: Callable[..., Risk]) -> None:
    risk = raise_risk("SC")
    engine.fire(
        session,
        "risk",
        risk.id,
        "send_formal_notification",
        principal=person("nm", NM),
        clock=FixedClock(date(2026, 12, 18)),
    )
    engine.fire(
        session,
        "risk",
        risk.id,
        "regrade",
        principal=person("nm", NM),
        clock=FixedClock(date(2026, 12, 21)),
        note="appeal partly upheld",
        params={"level": "IR"},
    )
    session.commit()
    (d,) = engine.pending_deadlines(session, "risk", risk.id)
    assert (risk.level, d.due_on) == ("IR", date(2027, 1, 6))  # 10 working days from 18 Dec, not 20
    with pytest.raises(InvalidInput, match="different from the current IR"):
        engine.fire(
            session,
            "risk",
            risk.id,
            "regrade",
            principal=person("nm", NM),
            clock=FixedClock(date(2026, 12, 21)),
            note="x",
            params={"level": "IR"},
        )


def test_clock_stop_pauses_resumes_and_extends_with_reasons(session: Session, raise_risk: Callable[..., Risk]) -> None:
    risk = raise_risk("IR")
    engine.fire(
        session,
        "risk",
        risk.id,
        "send_formal_notification",
        principal=person("nm", NM),
        clock=FixedClock(date(2026, 12, 18)),
    )
    with pytest.raises(InvalidInput, match="needs a reason"):
        engine.fire(
            session, "risk", risk.id, "pause_clock", principal=person("nm", NM), clock=FixedClock(date(2026, 12, 21))
        )
    engine.fire(
        session,
        "risk",
        risk.id,
        "pause_clock",
        principal=person("nm", NM),
        clock=FixedClock(date(2026, 12, 21)),
        note="Trust IT outage",
    )
    session.commit()
    (d,) = engine.pending_deadlines(session, "risk", risk.id)
    assert (d.status, d.paused_remaining) == ("paused", 9)  # 22,23,24,29,30,31 Dec, 4,5,6 Jan
    with pytest.raises(GuardRefused, match="no running deadline"):
        engine.fire(
            session,
            "risk",
            risk.id,
            "pause_clock",
            principal=person("nm", NM),
            clock=FixedClock(date(2026, 12, 22)),
            note="again",
        )
    session.rollback()
    engine.fire(
        session,
        "risk",
        risk.id,
        "resume_clock",
        principal=person("nm", NM),
        clock=FixedClock(date(2027, 1, 11)),
        note="restored",
    )
    session.commit()
    (d,) = engine.pending_deadlines(session, "risk", risk.id)
    assert (d.status, d.due_on, d.remind_on) == ("open", date(2027, 1, 22), date(2027, 1, 20))
    engine.fire(
        session,
        "risk",
        risk.id,
        "extend_deadline",
        principal=person("rl", "regional-lead"),
        clock=FixedClock(date(2027, 1, 12)),
        note="agreed with the Medical Director",
        params={"days": 3},
    )
    session.commit()
    assert engine.pending_deadlines(session, "risk", risk.id)[0].due_on == date(2027, 1, 27)
    with pytest.raises(BadDate, match="must move it later"):
        engine.fire(
            session,
            "risk",
            risk.id,
            "extend_deadline",
            principal=person("rl", "regional-lead"),
            clock=FixedClock(date(2027, 1, 12)),
            note="x",
            params={"until": "2027-01-20"},
        )
    session.rollback()
    events = engine.history(session, "risk", risk.id)
    clock_events = [(e.trigger, e.note) for e in events if e.trigger.endswith(("_clock", "_deadline"))]
    assert clock_events == [
        ("pause_clock", "Trust IT outage"),
        ("resume_clock", "restored"),
        ("extend_deadline", "agreed with the Medical Director"),
    ]
    assert events[-1].data["deadlines"]["response"] == {"from": "2027-01-22", "to": "2027-01-27"}


def test_batch_loses_whole_to_a_writer_who_changed_one_of_its_rows_after_it_read_them(
    db: Any,
    session: Session,
    raise_risk: Callable[..., Risk],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The batched UPDATE names each row's version as read: one row changed meanwhile and the
    whole batch is refused, naming no false winner; nothing of it is written."""
    first, second = raise_risk("SC"), raise_risk("SC")
    session.commit()
    at = FixedClock(date(2026, 12, 18))
    preload = engine.preload

    def someone_else_moves_in(s: Session, requests: list[engine.Request]) -> list[Any]:
        rows = preload(s, requests)  # the batch has read both rows...
        if len(requests) < 2:
            return rows  # the other writer's own fire
        with Session(db) as other:  # ...then an operator commits a change to the second
            engine.fire(
                other,
                "risk",
                second.id,
                "withdraw",
                principal=person("Dr Asha Patel", NM),
                clock=at,  # type: ignore[arg-type]
                note="raised in error",
            )
            other.commit()
        return rows

    monkeypatch.setattr(engine, "preload", someone_else_moves_in)
    counts = _counts(session)
    with pytest.raises(StaleVersion, match="one of 2 items was changed by someone else"):
        engine.fire_many(
            session,
            [engine.Request("risk", r.id, "send_formal_notification") for r in (first, second)],  # type: ignore[arg-type]
            principal=person("Dr Asha Patel", NM),
            clock=at,
        )
    session.rollback()
    session.expire_all()
    # Only the other writer's transition is stored: its audit event, its letter, its closed deadline.
    events, letters, _ = _counts(session)
    assert events == counts[0] + 1 and letters == counts[1] + 1
    assert (session.get(Risk, first.id).state, session.get(Risk, first.id).version) == ("identified", 2)  # type: ignore[union-attr]
    assert (session.get(Risk, second.id).state, session.get(Risk, second.id).version) == ("withdrawn", 3)  # type: ignore[union-attr]
    assert [e.trigger for e in engine.history(session, "risk", first.id)] == ["raise"]  # type: ignore[arg-type]


def test_batch_undone_by_a_savepoint_leaves_its_rows_as_the_database_holds_them(
    session: Session,
    raise_risk: Callable[..., Risk],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sweep fires each batch in a savepoint: if anything after the rows' UPDATE refuses,
    the rollback must expire the rows, so the one-by-one retry plans from the stored state."""
    from states.errors import PeerwatchError

    risks = [raise_risk("SC"), raise_risk("SC")]
    session.commit()
    at = FixedClock(date(2026, 12, 18))

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise PeerwatchError("refused after the rows were written")

    savepoint = session.begin_nested()
    with monkeypatch.context() as m:
        m.setattr(engine, "append_audit", refuse)
        with pytest.raises(PeerwatchError):
            engine.fire_many(
                session,
                [engine.Request("risk", r.id, "send_formal_notification") for r in risks],  # type: ignore[arg-type]
                principal=person("Dr Asha Patel", NM),
                clock=at,
            )
    savepoint.rollback()
    assert [(r.state, r.version) for r in risks] == [("identified", 2), ("identified", 2)]
    out = engine.fire(
        session, "risk", risks[0].id, "send_formal_notification", principal=person("Dr Asha Patel", NM), clock=at
    )  # type: ignore[arg-type]
    session.commit()
    assert (out.row.state, out.row.version) == ("awaiting_response", 3)
