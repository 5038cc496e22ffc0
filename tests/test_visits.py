"""Peer review visits (DOMAIN.md "Peer review visit"): the visit machine table-driven, its guards,
scheduling, the panel and its conflict rules, notification deadlines and chasing, postponement and
cancellation, high level feedback, the day's agenda and calendar, and the weighting of candidates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import icalendar
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from models import AuditEvent, Deadline, OutboxMessage, Risk
from models.tables import Contact, Network, PanelMember, Report, Reviewer, Service, Visit
from notifications.ics import visit_calendar
from notifications.render import rendered
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock
from states.engine.letters import resolve
from states.engine.sweep import run_sweep
from states.errors import GuardRefused, InvalidInput, InvalidTrigger, NotFound, PermissionDenied
from states.machines.spec import get_spec
from states.machines.visit import VisitState, agenda, panel_view
from states.machines.visit import panel as _panel
from states.policy import Policy
from states.scope import recipient_scope
from states.views.weighting import candidates

V = VisitState
SPEC = get_spec("visit")
NM, RL, OFFICE, OPERATOR = "network-manager", "regional-lead", "network-office", "operator"
MRH = "Midland Royal Major Trauma Centre"
MERSEY = "Mersey Harbour Major Trauma Centre"
SEVERNSIDE = "Severnside Trauma Unit"
BURNS = "Valley Burns Service"
CLOCK_TRIGGERS = ("pause_clock", "resume_clock", "extend_deadline")
OPEN_STATES = ("proposed", "scheduled", "service_notified", "prepared", "held", "feedback_given")

T0 = date(2026, 10, 5)  # Mon: the visit is proposed
VISIT = date(2026, 11, 12)  # Thu: the visit day
CAL = calendar_for("ENG")


# --------------------------------------------------------------------------- helpers


def _counts(session: Session) -> tuple[int, ...]:
    return tuple(
        session.exec(select(func.count()).select_from(m)).one()
        for m in (AuditEvent, OutboxMessage, Deadline, PanelMember, Risk, Report)
    )


def _reviewers(session: Session) -> dict[str, Reviewer]:
    return {r.name: r for r in session.exec(select(Reviewer))}


def _letters(session: Session, visit_id: int) -> list[str]:
    return list(
        session.exec(
            select(OutboxMessage.template)
            .where(OutboxMessage.kind == "visit", OutboxMessage.item_id == visit_id)
            .order_by(col(OutboxMessage.id))
        ).all()
    )


def _fire(
    session: Session, visit_id: int, trigger: str, day: date, *, role: str = NM, note: str | None = None, **params: Any
) -> engine.Outcome:
    out = engine.fire(
        session,
        "visit",
        visit_id,
        trigger,
        actor="tester",
        role=role,
        clock=FixedClock(day),
        note=note,
        params=params or None,
    )
    session.commit()
    return out


def _propose(session: Session, services: dict[str, int], service: str = MRH, day: date = T0) -> Visit:
    out = engine.create(
        session,
        "visit",
        Visit(service_id=services[service], state="new"),
        "propose",
        actor="tester",
        role=OFFICE,
        clock=FixedClock(day),
        note="weighting score",
    )
    session.commit()
    return out.row  # type: ignore[return-value]


def _add(session: Session, visit_id: int, name: str, day: date, **extra: Any) -> None:
    _fire(session, visit_id, "add_panel_member", day, role=OFFICE, reviewer_id=_reviewers(session)[name].id, **extra)


def _declare(session: Session, visit_id: int, name: str, day: date, conflicts: str | None = None) -> None:
    params: dict[str, Any] = {"reviewer_id": _reviewers(session)[name].id}
    if conflicts:
        params["conflicts"] = conflicts
    _fire(session, visit_id, "record_declaration", day, role=OFFICE, **params)


PANEL = ("Dr Maya Fenwick", "Ms Carys Holt", "Mr Rohan Mehta")  # fine for a Midland Royal visit


def _notified(
    session: Session,
    services: dict[str, int],
    visit_day: date = VISIT,
    *,
    service: str = MRH,
    panel: tuple[str, ...] = PANEL,
    start: date | None = None,
    mode: str = "in_person",
) -> Visit:
    """Proposed, scheduled, panel invited and service notified, all on ``start`` (5 weeks before)."""
    start = start or visit_day - timedelta(weeks=5)
    visit = _propose(session, services, service, start)
    _fire(session, visit.id, "schedule", start, date=visit_day.isoformat(), mode=mode)
    for name in panel:
        _add(session, visit.id, name, start)
    _fire(session, visit.id, "notify_service", start, role=OFFICE)
    return visit


def _prepared(session: Session, services: dict[str, int], visit_day: date = VISIT, **kw: Any) -> Visit:
    visit = _notified(session, services, visit_day, **kw)
    day = visit_day - timedelta(weeks=4)
    for name in kw.get("panel", PANEL):
        _declare(session, visit.id, name, day)
    _fire(
        session,
        visit.id,
        "record_preparation",
        day,
        role=OFFICE,
        prep_session="held",
        panel_confirmed="yes",
        evidence_received="yes",
    )
    _fire(session, visit.id, "confirm_prepared", day, role=OFFICE)
    assert visit.state == "prepared"
    return visit


def _held(session: Session, services: dict[str, int], visit_day: date = VISIT, **kw: Any) -> Visit:
    visit = _prepared(session, services, visit_day, **kw)
    _fire(session, visit.id, "hold", visit_day, role=OFFICE)
    assert visit.state == "held"
    return visit


# --------------------------------------------------------------------------- the machine, table-driven

DEADLINE_OPEN = {"deadline": "open"}
DEADLINE_PAUSED = {"deadline": "paused"}
PREPARED_OK = {
    "fields": {"prep_session": "held", "panel_confirmed": True, "evidence_received": True},
    "panel": [("Ms Carys Holt", VISIT - timedelta(days=7), None)],
}
ON_PANEL = {"panel": [("Ms Carys Holt", None, None)], "params": {"reviewer_id": "Ms Carys Holt"}}
NEW_DATE = {"params": {"date": "2026-12-03"}, "note": "the service lead is on leave"}

# (source state, trigger, role, setup, expected destination, letters expected)
TABLE: list[tuple[str, str, str, dict[str, Any], str, set[str]]] = [
    (V.NEW, "propose", OFFICE, {}, V.PROPOSED, set()),
    (V.PROPOSED, "schedule", NM, {"params": {"date": "2026-12-03", "mode": "virtual"}}, V.SCHEDULED, set()),
    *[
        (s, "add_panel_member", OFFICE, {"params": {"reviewer_id": "Ms Carys Holt"}}, s, {"panel_invitation"})
        for s in (V.PROPOSED, V.SCHEDULED, V.SERVICE_NOTIFIED)
    ],
    *[
        (s, "remove_panel_member", OPERATOR, {**ON_PANEL, "note": "unavailable"}, s, set())
        for s in (V.PROPOSED, V.SCHEDULED, V.SERVICE_NOTIFIED)
    ],
    *[(s, "record_declaration", OFFICE, ON_PANEL, s, set()) for s in (V.PROPOSED, V.SCHEDULED, V.SERVICE_NOTIFIED)],
    *[
        (s, "record_preparation", RL, {"params": {"prep_session": "held"}}, s, set())
        for s in (V.SCHEDULED, V.SERVICE_NOTIFIED)
    ],
    (V.SCHEDULED, "notify_service", OFFICE, {}, V.SERVICE_NOTIFIED, {"visit_notification", "prep_session_invitation"}),
    (V.SERVICE_NOTIFIED, "confirm_prepared", OFFICE, PREPARED_OK, V.PREPARED, set()),
    (V.PREPARED, "hold", OFFICE, {}, V.HELD, set()),
    (V.HELD, "give_feedback", NM, {"params": {"risks": []}}, V.FEEDBACK_GIVEN, set()),
    (V.HELD, "give_feedback", RL, {"params": {"risks": []}}, V.FEEDBACK_GIVEN, set()),
    (V.FEEDBACK_GIVEN, "close", RL, {}, V.CLOSED, set()),
    (V.SCHEDULED, "postpone", OFFICE, NEW_DATE, V.SCHEDULED, set()),  # the service was never told
    (V.SERVICE_NOTIFIED, "postpone", OFFICE, NEW_DATE, V.SCHEDULED, {"visit_postponed"}),
    (V.PREPARED, "postpone", NM, NEW_DATE, V.SCHEDULED, {"visit_postponed"}),
    (V.PROPOSED, "cancel", NM, {"note": "service reconfigured"}, V.CANCELLED, set()),
    *[
        (s, "cancel", RL, {"note": "service reconfigured"}, V.CANCELLED, {"visit_cancelled"})
        for s in (V.SCHEDULED, V.SERVICE_NOTIFIED, V.PREPARED)
    ],
    *[(s, "pause_clock", NM, {**DEADLINE_OPEN, "note": "Trust IT outage"}, s, set()) for s in OPEN_STATES],
    *[(s, "resume_clock", OPERATOR, {**DEADLINE_PAUSED, "note": "restored"}, s, set()) for s in OPEN_STATES],
    *[
        (s, "extend_deadline", RL, {**DEADLINE_OPEN, "note": "agreed", "params": {"days": 3}}, s, set())
        for s in OPEN_STATES
    ],
]


def _put_in(session: Session, services: dict[str, int], state: str, setup: dict[str, Any] | None = None) -> Visit:
    """Test setup shortcut: place a proposed visit in a given state, with what the setup asks for."""
    setup = setup or {}
    visit = _propose(session, services)
    visit.state = str(state)
    if state not in (V.NEW, V.PROPOSED):
        visit.visit_date = VISIT
    for name, value in setup.get("fields", {}).items():
        setattr(visit, name, value)
    session.add(visit)
    reviewers = _reviewers(session)
    for name, declared_on, conflicts in setup.get("panel", []):
        session.add(
            PanelMember(
                visit_id=visit.id, reviewer_id=reviewers[name].id, declared_on=declared_on, declared_conflicts=conflicts
            )
        )
    if "deadline" in setup:
        paused = setup["deadline"] == "paused"
        session.add(
            Deadline(
                kind="visit",
                item_id=visit.id,
                name="visit_day",
                due_on=date(2026, 11, 30),
                status="paused" if paused else "open",
                paused_remaining=5 if paused else None,
            )
        )
    session.commit()
    return visit


def _params(session: Session, setup: dict[str, Any]) -> dict[str, Any] | None:
    params = dict(setup.get("params", {}))
    if isinstance(params.get("reviewer_id"), str):
        params["reviewer_id"] = _reviewers(session)[params["reviewer_id"]].id
    return params or None


@pytest.mark.parametrize(
    ("source", "trigger", "role", "setup", "dest", "letters"), TABLE, ids=[f"{t[0]}-{t[1]}-{t[2]}" for t in TABLE]
)
def test_allowed_transitions(
    session: Session,
    services: dict[str, int],
    source: str,
    trigger: str,
    role: str,
    setup: dict[str, Any],
    dest: str,
    letters: set[str],
) -> None:
    visit = _put_in(session, services, source, setup)
    before_version, before_letters = visit.version, set(_letters(session, visit.id))
    out = engine.fire(
        session,
        "visit",
        visit.id,
        trigger,
        actor="tester",
        role=role,
        clock=FixedClock(VISIT),
        note=setup.get("note"),
        params=_params(session, setup),
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
    assert set(_letters(session, visit.id)) - before_letters == letters


ALLOWED = {(str(src), trig) for src, trig, *_ in TABLE}
REFUSED = [(s.value, t) for s in V for t in SPEC.triggers() if (s.value, t) not in ALLOWED]


def test_table_covers_machine() -> None:
    """Every pair the machine allows is in the table above, and vice versa."""
    machine_pairs = {(s.value, t) for s in V for t in SPEC.allowed_from(s.value)}
    assert machine_pairs == ALLOWED
    # the clock stop is on every open state, and not on new, closed or cancelled
    assert {p for p in ALLOWED if p[1] in CLOCK_TRIGGERS} == {(s, t) for s in OPEN_STATES for t in CLOCK_TRIGGERS}
    assert SPEC.allowed_from("closed") == [] and SPEC.allowed_from("cancelled") == []


@pytest.mark.parametrize(("state", "trigger"), REFUSED, ids=[f"{s}-{t}" for s, t in REFUSED])
def test_refused_pairs_change_nothing(session: Session, services: dict[str, int], state: str, trigger: str) -> None:
    visit = _put_in(session, services, state)
    version, counts = visit.version, _counts(session)
    with pytest.raises(InvalidTrigger, match=f"'{state}'"):
        engine.fire(session, "visit", visit.id, trigger, actor="tester", role=NM, clock=FixedClock(VISIT), note="n")
    session.rollback()
    fresh = session.get(Visit, visit.id)
    assert fresh is not None and (fresh.state, fresh.version) == (state, version)
    assert _counts(session) == counts


# --------------------------------------------------------------------------- guards

PREP_DAY = VISIT - timedelta(weeks=4)  # Thu 15 Oct 2026

# (case, what to record before confirm_prepared, the rule that refuses)
MISSING = [
    ("prep session only offered", {"prep": "offered"}, "is_preparation_settled"),
    ("panel not confirmed", {"panel_confirmed": "no"}, "is_panel_confirmed"),
    ("a reviewer has not declared", {"undeclared": "Mr Rohan Mehta"}, "has_conflicts_cleared"),
    ("a reviewer declared a conflict", {"conflict": "Mr Rohan Mehta"}, "has_conflicts_cleared"),
    ("no evidence received", {"evidence_received": "no"}, "is_evidence_received"),
]


def _ready_but(session: Session, services: dict[str, int], case: dict[str, Any]) -> Visit:
    visit = _notified(session, services)
    for name in PANEL:
        if case.get("undeclared") == name:
            continue
        _declare(
            session,
            visit.id,
            name,
            PREP_DAY,
            "examined the service's trainees in 2025" if case.get("conflict") == name else None,
        )
    _fire(
        session,
        visit.id,
        "record_preparation",
        PREP_DAY,
        role=OFFICE,
        prep_session=case.get("prep", "held"),
        panel_confirmed=case.get("panel_confirmed", "yes"),
        evidence_received=case.get("evidence_received", "yes"),
    )
    return visit


@pytest.mark.parametrize(("case", "setup", "rule"), MISSING, ids=[m[0] for m in MISSING])
def test_confirm_prepared_refused_while_an_item_is_missing(
    session: Session, services: dict[str, int], case: str, setup: dict[str, Any], rule: str
) -> None:
    visit = _ready_but(session, services, setup)
    version, counts = visit.version, _counts(session)
    with pytest.raises(GuardRefused, match=rule):
        engine.fire(
            session, "visit", visit.id, "confirm_prepared", actor="tester", role=OFFICE, clock=FixedClock(PREP_DAY)
        )
    session.rollback()
    fresh = session.get(Visit, visit.id)
    assert fresh is not None and (fresh.state, fresh.version) == ("service_notified", version)
    assert _counts(session) == counts


@pytest.mark.parametrize(("case", "setup", "rule"), MISSING, ids=[m[0] for m in MISSING])
def test_confirm_prepared_refusal_names_only_the_unmet_rule(
    session: Session, services: dict[str, int], case: str, setup: dict[str, Any], rule: str
) -> None:
    visit = _ready_but(session, services, setup)
    with pytest.raises(GuardRefused) as err:
        engine.fire(
            session, "visit", visit.id, "confirm_prepared", actor="tester", role=OFFICE, clock=FixedClock(PREP_DAY)
        )
    others = {"is_preparation_settled", "is_panel_confirmed", "has_conflicts_cleared", "is_evidence_received"} - {rule}
    assert rule in str(err.value)
    assert not [o for o in others if o in str(err.value)], str(err.value)


def test_confirm_prepared_refused_with_no_panel(session: Session, services: dict[str, int]) -> None:
    visit = _notified(session, services, panel=())
    _fire(
        session,
        visit.id,
        "record_preparation",
        PREP_DAY,
        role=OFFICE,
        prep_session="held",
        panel_confirmed="yes",
        evidence_received="yes",
    )
    with pytest.raises(GuardRefused, match="has_conflicts_cleared"):
        engine.fire(
            session, "visit", visit.id, "confirm_prepared", actor="tester", role=OFFICE, clock=FixedClock(PREP_DAY)
        )


@pytest.mark.parametrize("prep", ["held", "declined"])
def test_confirm_prepared_once_everything_is_in(session: Session, services: dict[str, int], prep: str) -> None:
    visit = _ready_but(session, services, {"prep": prep})
    out = _fire(session, visit.id, "confirm_prepared", PREP_DAY, role=OFFICE)
    assert out.row.state == "prepared"


def test_adding_a_reviewer_unconfirms_the_panel(session: Session, services: dict[str, int]) -> None:
    visit = _ready_but(session, services, {})
    assert visit.panel_confirmed is True
    _add(session, visit.id, "Ms Tessa Quinn", PREP_DAY)
    assert visit.panel_confirmed is False
    with pytest.raises(GuardRefused, match="is_panel_confirmed"):
        engine.fire(
            session, "visit", visit.id, "confirm_prepared", actor="tester", role=OFFICE, clock=FixedClock(PREP_DAY)
        )


def test_hold_is_refused_before_the_visit_day(session: Session, services: dict[str, int]) -> None:
    visit = _prepared(session, services)
    version, counts = visit.version, _counts(session)
    with pytest.raises(GuardRefused, match="is_visit_day_reached"):
        engine.fire(
            session, "visit", visit.id, "hold", actor="tester", role=OFFICE, clock=FixedClock(VISIT - timedelta(days=1))
        )
    session.rollback()
    assert (visit.state, visit.version, _counts(session)) == ("prepared", version, counts)
    assert _fire(session, visit.id, "hold", VISIT, role=OFFICE).row.state == "held"


# --------------------------------------------------------------------------- scheduling


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"date": "2026-10-02"}, "in the past"),  # Fri before the Monday we schedule on
        ({"date": "2026-11-14"}, "not a working day"),  # Saturday
        ({"date": "2026-12-25"}, "not a working day"),  # Christmas Day, a Friday
        ({"date": "2026-12-28"}, "not a working day"),  # substitute day for Boxing Day
        ({"date": "2026-11-12", "mode": "hybrid"}, "mode 'hybrid'"),
        ({"mode": "virtual"}, "needs date"),
    ],
)
def test_schedule_refuses_bad_dates_and_modes(
    session: Session, services: dict[str, int], params: dict[str, str], match: str
) -> None:
    visit = _propose(session, services)
    counts = _counts(session)
    with pytest.raises(InvalidInput, match=match):
        engine.fire(
            session, "visit", visit.id, "schedule", actor="tester", role=OFFICE, clock=FixedClock(T0), params=params
        )
    session.rollback()
    fresh = session.get(Visit, visit.id)
    assert fresh is not None and (fresh.state, fresh.visit_date, fresh.version) == ("proposed", None, 2)
    assert _counts(session) == counts


@pytest.mark.parametrize(
    ("mode", "expected"), [(None, "in_person"), ("in_person", "in_person"), ("virtual", "virtual")]
)
def test_schedule_sets_date_and_mode(
    session: Session, services: dict[str, int], mode: str | None, expected: str
) -> None:
    visit = _propose(session, services)
    params = {"date": "2026-11-12", **({"mode": mode} if mode else {})}
    out = _fire(session, visit.id, "schedule", T0, **params)
    assert (out.row.state, out.row.visit_date, out.row.mode) == ("scheduled", VISIT, expected)  # type: ignore[attr-defined]


def test_schedule_on_today_is_allowed(session: Session, services: dict[str, int]) -> None:
    visit = _propose(session, services)
    assert _fire(session, visit.id, "schedule", T0, date=T0.isoformat()).row.visit_date == T0  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- the panel


def _refused_panel(session: Session, visit: Visit, name: str, match: str) -> None:
    counts = _counts(session)
    with pytest.raises(GuardRefused, match=match):
        engine.fire(
            session,
            "visit",
            visit.id,
            "add_panel_member",
            actor="tester",
            role=OFFICE,
            clock=FixedClock(T0),
            params={"reviewer_id": _reviewers(session)[name].id},
        )
    session.rollback()
    assert _counts(session) == counts
    assert name not in [r.name for _, r in _panel(session, visit.id)]
    assert "panel_invitation" not in _letters(session, visit.id)


def test_reviewer_from_the_organisation_under_review_is_refused(session: Session, services: dict[str, int]) -> None:
    visit = _propose(session, services, MRH)
    _refused_panel(
        session,
        visit,
        "Dr Felix Okoro",
        r"Dr Felix Okoro works for Midland Royal Hospitals NHS Trust, the organisation under review",
    )


def test_reviewer_from_the_shared_pathway_is_refused(session: Session, services: dict[str, int]) -> None:
    visit = _propose(session, services, MRH)
    _refused_panel(session, visit, "Ms Ada Lindqvist", r"shared pathway \(Central West Midlands trauma pathway\)")


def test_same_reviewers_accepted_for_a_service_outside_their_trust_and_pathway(
    session: Session, services: dict[str, int]
) -> None:
    visit = _propose(session, services, MERSEY)
    for name in ("Dr Felix Okoro", "Ms Ada Lindqvist"):
        _add(session, visit.id, name, T0)
    members, _ = panel_view(session, visit)
    assert [(m["name"], m["other_network"], m["network"]) for m in members] == [
        ("Dr Felix Okoro", True, "WMTN"),
        ("Ms Ada Lindqvist", True, "WMTN"),
    ]


def test_reviewer_from_another_network_is_accepted_and_marked(session: Session, services: dict[str, int]) -> None:
    visit = _propose(session, services, MRH)  # a WMTN service
    _add(session, visit.id, "Dr Maya Fenwick", T0)  # home network CMMTN
    _add(session, visit.id, "Ms Carys Holt", T0)  # home network WMTN
    members, _ = panel_view(session, visit)
    by_name = {m["name"]: m for m in members}
    assert by_name["Dr Maya Fenwick"]["other_network"] is True
    assert by_name["Dr Maya Fenwick"]["network"] == "CMMTN"
    assert by_name["Dr Maya Fenwick"]["organisation"] == "Mersey Harbour Hospitals NHS Trust"
    assert by_name["Ms Carys Holt"]["other_network"] is False


def test_panel_missing_disciplines_are_warned(session: Session, services: dict[str, int]) -> None:
    visit = _propose(session, services, MRH)
    _add(session, visit.id, "Dr Maya Fenwick", T0)  # clinician
    _add(session, visit.id, "Ms Carys Holt", T0)  # AHP
    _add(session, visit.id, "Ms Tessa Quinn", T0, observer="yes")  # commissioning, but only observing
    members, warnings = panel_view(session, visit)
    assert warnings[0] == (
        "panel has no Nurse, Management, Commissioning, Service user member: the SOP asks for a multidisciplinary panel"
    )
    assert {m["name"]: m["discipline"] for m in members}["Ms Tessa Quinn"] == "observer"
    assert "Dr Maya Fenwick has not returned a conflict-of-interest declaration" in warnings
    _declare(session, visit.id, "Dr Maya Fenwick", T0, "was a trainee at the Trust")
    _, warnings = panel_view(session, visit)
    assert "Dr Maya Fenwick declared a conflict: was a trainee at the Trust" in warnings


def test_full_panel_has_no_discipline_warning(session: Session, services: dict[str, int]) -> None:
    visit = _propose(session, services, MRH)
    for name in (
        "Dr Maya Fenwick",
        "Mr Idris Vaughan",
        "Ms Carys Holt",
        "Mr Rohan Mehta",
        "Ms Tessa Quinn",
        "Mrs Joan Pryce",
    ):
        _add(session, visit.id, name, T0)
    _, warnings = panel_view(session, visit)
    assert not [w for w in warnings if w.startswith("panel has no")]
    assert "Mrs Joan Pryce has not had reviewer training" in warnings


def test_adding_a_reviewer_twice_is_refused(session: Session, services: dict[str, int]) -> None:
    visit = _propose(session, services, MRH)
    _add(session, visit.id, "Ms Carys Holt", T0)
    counts = _counts(session)
    with pytest.raises(GuardRefused, match="already on the panel"):
        _add(session, visit.id, "Ms Carys Holt", T0)
    session.rollback()
    assert _counts(session) == counts
    assert len(_panel(session, visit.id)) == 1


def test_retired_reviewer_is_refused_from_the_retirement_date(session: Session, services: dict[str, int]) -> None:
    """A reviewer retired (states.services.contacts.retire_reviewer) is not added to a panel from the
    retirement date, as of the clock's date; before that date the reviewer still may be."""
    from states.services.contacts import retire_reviewer

    retire_reviewer(
        session,
        _reviewers(session)["Ms Carys Holt"].id,
        effective=T0 + timedelta(days=1),
        actor="tester",
        actor_role=OFFICE,
        clock=FixedClock(T0),
    )
    session.commit()
    visit = _propose(session, services, MRH)
    counts = _counts(session)
    with pytest.raises(
        GuardRefused,
        match=r"Ms Carys Holt \(reviewer \d+\) retired from 2026-10-06: a retired reviewer is not "
        r"invited onto panels",
    ):
        engine.fire(
            session,
            "visit",
            visit.id,
            "add_panel_member",
            actor="tester",
            role=OFFICE,
            clock=FixedClock(T0 + timedelta(days=1)),
            params={"reviewer_id": _reviewers(session)["Ms Carys Holt"].id},
        )
    session.rollback()
    assert _counts(session) == counts
    assert "panel_invitation" not in _letters(session, visit.id)
    _add(session, visit.id, "Ms Carys Holt", T0)  # the day before the retirement: still a reviewer
    assert [r.name for _, r in _panel(session, visit.id)] == ["Ms Carys Holt"]


def test_panel_invitation_goes_to_the_reviewers_own_email(session: Session, services: dict[str, int]) -> None:
    visit = _propose(session, services, MRH)
    _fire(session, visit.id, "schedule", T0, date="2026-11-12")
    _add(session, visit.id, "Dr Maya Fenwick", T0)
    (msg,) = session.exec(
        select(OutboxMessage).where(OutboxMessage.kind == "visit", OutboxMessage.template == "panel_invitation")
    ).all()
    assert [p["email"] for p in msg.to] == ["maya.fenwick@reviewers.nhs.example"]
    assert [p["role"] for p in msg.cc] == ["network-office"]
    assert "Dear Dr Maya Fenwick" in rendered(msg).body_text
    assert "Thu 12 Nov 2026" in rendered(msg).subject and MRH in rendered(msg).subject


def test_remove_panel_member_needs_a_reason_and_removes(session: Session, services: dict[str, int]) -> None:
    visit = _propose(session, services, MRH)
    _add(session, visit.id, "Ms Carys Holt", T0)
    rid = _reviewers(session)["Ms Carys Holt"].id
    with pytest.raises(InvalidInput, match="needs a reason"):
        engine.fire(
            session,
            "visit",
            visit.id,
            "remove_panel_member",
            actor="t",
            role=OFFICE,
            clock=FixedClock(T0),
            params={"reviewer_id": rid},
        )
    session.rollback()
    _fire(session, visit.id, "remove_panel_member", T0, role=OFFICE, note="unwell", reviewer_id=rid)
    assert _panel(session, visit.id) == []
    with pytest.raises(GuardRefused, match="not on the panel"):
        _declare(session, visit.id, "Ms Carys Holt", T0)


# --------------------------------------------------------------------------- notification, deadlines and chasing


@pytest.mark.parametrize(
    ("visit_day", "notified_on", "declarations", "remind"),
    [
        (VISIT, T0, date(2026, 10, 29), date(2026, 10, 27)),  # Thu 12 Nov -> Thu 29 Oct, reminder Tue 27 Oct
        # across Christmas: Thu 14 Jan 2027 -> Wed 30 Dec 2026 (1 Jan, 28 and 25 Dec are holidays), reminder Thu 24 Dec
        (date(2027, 1, 14), date(2026, 12, 7), date(2026, 12, 30), date(2026, 12, 24)),
    ],
)
def test_notify_service_writes_letters_and_opens_deadlines(
    session: Session, services: dict[str, int], visit_day: date, notified_on: date, declarations: date, remind: date
) -> None:
    visit = _notified(session, services, visit_day, start=notified_on)
    assert visit.state == "service_notified" and visit.prep_session == "offered"
    assert _letters(session, visit.id)[-2:] == ["visit_notification", "prep_session_invitation"]
    notice = session.exec(
        select(OutboxMessage).where(OutboxMessage.kind == "visit", OutboxMessage.template == "visit_notification")
    ).one()
    assert sorted(p["role"] for p in notice.to) == ["chief-executive", "service-lead"]
    pending = {d.name: (d.due_on, d.remind_on) for d in engine.pending_deadlines(session, "visit", visit.id)}
    assert CAL.subtract_working_days(visit_day, 10) == declarations
    assert pending == {"declarations": (declarations, remind), "visit_day": (visit_day, None)}


def test_declarations_lead_time_is_local_policy(
    session: Session, services: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEERWATCH_DECLARATIONS_WORKING_DAYS_BEFORE_VISIT", "5")
    visit = _notified(session, services, VISIT, start=T0)
    (decl,) = [d for d in engine.pending_deadlines(session, "visit", visit.id) if d.name == "declarations"]
    assert decl.due_on == date(2026, 11, 5)  # 5 working days before Thu 12 Nov


def test_declarations_due_no_earlier_than_notification(session: Session, services: dict[str, int]) -> None:
    visit = _notified(session, services, VISIT, start=date(2026, 11, 2))  # only 8 working days' notice
    (decl,) = [d for d in engine.pending_deadlines(session, "visit", visit.id) if d.name == "declarations"]
    assert (decl.due_on, decl.remind_on) == (date(2026, 11, 2), None)


def _chased(db: Engine, visit_id: int) -> list[str]:
    with Session(db) as s:
        rows = s.exec(
            select(OutboxMessage)
            .where(
                OutboxMessage.kind == "visit",
                OutboxMessage.item_id == visit_id,
                OutboxMessage.template == "declaration_chase",
            )
            .order_by(col(OutboxMessage.id))
        )
        return [p["email"] for m in rows for p in m.to]


def _office_email(session: Session) -> str:
    net = session.exec(select(Network).where(Network.code == "WMTN")).one()
    return (
        session.exec(select(Contact).where(Contact.role == "network-office", Contact.network_id == net.id)).one().email
    )


MAYA, CARYS, ROHAN = (
    "maya.fenwick@reviewers.nhs.example",
    "carys.holt@reviewers.nhs.example",
    "rohan.mehta@reviewers.nhs.example",
)


def test_reminder_day_chases_only_reviewers_who_have_not_declared(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    visit = _notified(session, services, VISIT, start=T0)  # declarations due Thu 29 Oct, reminder Tue 27 Oct
    _declare(session, visit.id, "Ms Carys Holt", date(2026, 10, 20))
    office = _office_email(session)
    assert [a["action"] for a in run_sweep(db, FixedClock(date(2026, 10, 26))).actions] == []
    for n in range(2):
        summary = run_sweep(db, FixedClock(date(2026, 10, 27)))
        assert [(a["deadline"], a["action"]) for a in summary.actions] == (
            [("declarations", "reminded")] if n == 0 else []
        )
    assert sorted(_chased(db, visit.id)) == sorted([MAYA, ROHAN, office])


def test_overdue_day_chases_only_reviewers_still_undeclared(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    visit = _notified(session, services, VISIT, start=date(2026, 10, 28))  # due Thu 29 Oct, too late for a reminder
    _declare(session, visit.id, "Ms Carys Holt", date(2026, 10, 28))
    for n in range(2):
        summary = run_sweep(db, FixedClock(date(2026, 10, 30)))
        assert [(a["deadline"], a["action"]) for a in summary.actions] == (
            [("declarations", "overdue_notice")] if n == 0 else []
        )
    assert sorted(_chased(db, visit.id)) == sorted([MAYA, ROHAN, _office_email(session)])


def test_reviewer_reminded_and_still_undeclared_is_chased_again_when_overdue(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    visit = _notified(session, services, VISIT, start=T0)  # declarations due Thu 29 Oct, reminder Tue 27 Oct
    run_sweep(db, FixedClock(date(2026, 10, 27)))  # all three reminded
    _declare(session, visit.id, "Ms Carys Holt", date(2026, 10, 28))
    _declare(session, visit.id, "Mr Rohan Mehta", date(2026, 10, 28))
    run_sweep(db, FixedClock(date(2026, 10, 30)))  # overdue: Maya has still not declared
    chased = _chased(db, visit.id)
    assert chased.count(MAYA) == 2
    assert (chased.count(CARYS), chased.count(ROHAN)) == (1, 1)  # reminded, then declared: not chased again


def test_no_chase_once_everyone_has_declared(db: Engine, session: Session, services: dict[str, int]) -> None:
    visit = _notified(session, services, VISIT, start=T0)
    for name in PANEL:
        _declare(session, visit.id, name, date(2026, 10, 20))
    for day in (date(2026, 10, 27), date(2026, 10, 30)):
        run_sweep(db, FixedClock(day))
    assert _chased(db, visit.id) == []


def test_visit_not_recorded_is_chased_once_when_left_unprepared(
    db: Engine, session: Session, services: dict[str, int]
) -> None:
    visit = _notified(session, services, VISIT, start=T0)
    for name in PANEL:
        _declare(session, visit.id, name, date(2026, 10, 20))
    for day in (VISIT, date(2026, 11, 13), date(2026, 11, 16)):
        run_sweep(db, FixedClock(day))
    assert _letters(session, visit.id).count("visit_not_recorded") == 3  # network office, cc NM and RL


def test_prepared_visit_not_recorded_as_held_is_chased(db: Engine, session: Session, services: dict[str, int]) -> None:
    visit = _prepared(session, services)
    for day in (VISIT, date(2026, 11, 13), date(2026, 11, 16)):
        run_sweep(db, FixedClock(day))
    assert _letters(session, visit.id).count("visit_not_recorded") == 3  # network office, cc NM and RL, once


def test_visit_recorded_as_held_is_not_chased(db: Engine, session: Session, services: dict[str, int]) -> None:
    visit = _held(session, services)
    for day in (date(2026, 11, 13), date(2026, 11, 16)):
        assert [a for a in run_sweep(db, FixedClock(day)).actions if a["kind"] == "visit"] == []
    assert "visit_not_recorded" not in _letters(session, visit.id)
    assert engine.pending_deadlines(session, "visit", visit.id) == []


# --------------------------------------------------------------------------- postpone and cancel


def test_postpone_before_notification_sends_no_letter(session: Session, services: dict[str, int]) -> None:
    visit = _propose(session, services)
    _fire(session, visit.id, "schedule", T0, date="2026-11-12")
    out = _fire(session, visit.id, "postpone", date(2026, 10, 6), note="panel chair unavailable", date="2026-11-19")
    assert (out.row.state, out.row.visit_date, out.row.postponements) == ("scheduled", date(2026, 11, 19), 1)  # type: ignore[attr-defined]
    assert "visit_postponed" not in _letters(session, visit.id)
    assert out.event.note == "panel chair unavailable"


def test_postpone_after_notification_tells_the_service_and_resets(session: Session, services: dict[str, int]) -> None:
    visit = _notified(session, services, VISIT, start=T0)
    _fire(session, visit.id, "record_preparation", T0, role=OFFICE, prep_session="held", panel_confirmed="yes")
    out = _fire(
        session, visit.id, "postpone", date(2026, 10, 8), role=OFFICE, note="Trust under OPEL 4", date="2026-12-03"
    )
    row = out.row
    assert (row.state, row.visit_date, row.postponements, row.prep_session, row.panel_confirmed) == (  # type: ignore[attr-defined]
        "scheduled",
        date(2026, 12, 3),
        1,
        None,
        False,
    )
    assert _letters(session, visit.id).count("visit_postponed") == 1
    msg = session.exec(select(OutboxMessage).where(OutboxMessage.template == "visit_postponed")).one()
    assert sorted(p["role"] for p in msg.to) == ["chief-executive", "service-lead"]
    assert engine.pending_deadlines(session, "visit", visit.id) == []  # the old dates no longer apply
    # notified again for the new date: new deadlines; a second postponement counts
    _fire(session, visit.id, "notify_service", date(2026, 10, 8), role=OFFICE)
    assert {d.name: d.due_on for d in engine.pending_deadlines(session, "visit", visit.id)} == {
        "declarations": date(2026, 11, 19),
        "visit_day": date(2026, 12, 3),
    }
    out = _fire(session, visit.id, "postpone", date(2026, 10, 9), role=OFFICE, note="again", date="2026-12-10")
    assert out.row.postponements == 2  # type: ignore[attr-defined]
    assert _letters(session, visit.id).count("visit_postponed") == 2


@pytest.mark.parametrize(
    ("note", "params", "exc", "match"),
    [
        (None, {"date": "2026-12-03"}, InvalidInput, "needs a reason"),
        ("  ", {"date": "2026-12-03"}, InvalidInput, "needs a reason"),
        ("leave", {"date": "2026-10-01"}, InvalidInput, "in the past"),
        ("leave", {"date": "2026-12-26"}, InvalidInput, "not a working day"),
        ("leave", {}, InvalidInput, "needs date"),
    ],
)
def test_postpone_refusals_change_nothing(
    session: Session,
    services: dict[str, int],
    note: str | None,
    params: dict[str, str],
    exc: type[Exception],
    match: str,
) -> None:
    visit = _notified(session, services, VISIT, start=T0)
    version, counts = visit.version, _counts(session)
    with pytest.raises(exc, match=match):
        engine.fire(
            session,
            "visit",
            visit.id,
            "postpone",
            actor="t",
            role=OFFICE,
            clock=FixedClock(date(2026, 10, 8)),
            note=note,
            params=params,
        )
    session.rollback()
    fresh = session.get(Visit, visit.id)
    assert fresh is not None and (fresh.state, fresh.version, fresh.visit_date, fresh.postponements) == (
        "service_notified",
        version,
        VISIT,
        0,
    )
    assert _counts(session) == counts


def test_cancel_with_a_reason(session: Session, services: dict[str, int]) -> None:
    visit = _notified(session, services, VISIT, start=T0)
    with pytest.raises(InvalidInput, match="needs a reason"):
        engine.fire(session, "visit", visit.id, "cancel", actor="t", role=NM, clock=FixedClock(date(2026, 10, 8)))
    session.rollback()
    with pytest.raises(PermissionDenied, match="needs one of network-manager, regional-lead"):
        engine.fire(
            session, "visit", visit.id, "cancel", actor="t", role=OFFICE, clock=FixedClock(date(2026, 10, 8)), note="x"
        )
    session.rollback()
    out = _fire(session, visit.id, "cancel", date(2026, 10, 8), role=RL, note="service decommissioned")
    assert (out.row.state, out.row.closed_reason) == ("cancelled", "service decommissioned")  # type: ignore[attr-defined]
    assert _letters(session, visit.id).count("visit_cancelled") == 1
    assert engine.pending_deadlines(session, "visit", visit.id) == []
    with pytest.raises(InvalidTrigger, match="none, the item is closed"):
        engine.fire(
            session, "visit", visit.id, "postpone", actor="t", role=NM, clock=FixedClock(date(2026, 10, 9)), note="x"
        )


def test_cancel_a_proposed_visit_writes_to_nobody(session: Session, services: dict[str, int]) -> None:
    visit = _propose(session, services)
    out = _fire(session, visit.id, "cancel", T0, note="not needed this year")
    assert out.row.state == "cancelled" and _letters(session, visit.id) == []


# --------------------------------------------------------------------------- high level feedback

FOUND = [
    {"level": "IR", "title": "No resuscitation trolley check", "impact": 4, "likelihood": 4, "standard_ref": "T-1.2"},
    {"level": "SC", "title": "Rehabilitation prescriptions missing", "standard_ref": "T-3.1"},
]


@pytest.mark.parametrize(
    ("visit_day", "formal_due", "report_due"),
    [
        (date(2026, 11, 12), date(2026, 11, 19), date(2027, 1, 7)),  # Thu -> Thu; + 8 weeks
        # Fri 18 Dec 2026: 21, 22, 23, 24 Dec, then 25 (Christmas) and 28 (Boxing Day substitute) skipped -> Tue 29 Dec
        (date(2026, 12, 18), date(2026, 12, 29), date(2027, 2, 12)),
    ],
)
def test_feedback_raises_the_risks_found_and_starts_the_report(
    session: Session, services: dict[str, int], visit_day: date, formal_due: date, report_due: date
) -> None:
    visit = _held(session, services, visit_day)
    out = _fire(session, visit.id, "give_feedback", visit_day, role=RL, risks=FOUND)
    assert out.row.state == "feedback_given"
    risks = list(session.exec(select(Risk).order_by(col(Risk.id))))
    assert [(r.level, r.title, r.visit_id, r.state, r.visit_date, r.identified_on) for r in risks] == [
        ("IR", FOUND[0]["title"], visit.id, "identified", visit_day, visit_day),
        ("SC", FOUND[1]["title"], visit.id, "identified", visit_day, visit_day),
    ]
    assert CAL.add_working_days(visit_day, 5) == formal_due
    for r in risks:
        assert [(d.name, d.due_on) for d in engine.pending_deadlines(session, "risk", r.id)] == [
            ("formal_notification", formal_due)
        ]
    (report,) = session.exec(select(Report)).all()
    assert (report.state, report.visit_id, report.basis_date, report.service_id) == (
        "drafting",
        visit.id,
        visit_day,
        visit.service_id,
    )
    assert [(d.name, d.due_on) for d in engine.pending_deadlines(session, "report", report.id)] == [
        ("report_due", report_due)
    ]
    assert report_due - visit_day == timedelta(weeks=8)
    raised = [e for e in session.exec(select(AuditEvent).where(AuditEvent.kind == "risk"))]
    assert {e.role for e in raised} == {RL} and all(f"visit {visit.id}" in (e.note or "") for e in raised)


def test_feedback_with_an_invalid_level_creates_nothing(session: Session, services: dict[str, int]) -> None:
    visit = _held(session, services)
    version, counts = visit.version, _counts(session)
    with pytest.raises(InvalidInput, match="risk level 'XX'"):
        engine.fire(
            session,
            "visit",
            visit.id,
            "give_feedback",
            actor="t",
            role=NM,
            clock=FixedClock(VISIT),
            params={"risks": [FOUND[0], {"level": "XX", "title": "?"}]},
        )
    session.rollback()
    fresh = session.get(Visit, visit.id)
    assert fresh is not None and (fresh.state, fresh.version) == ("held", version)
    assert _counts(session) == counts
    assert session.exec(select(func.count()).select_from(Risk)).one() == 0
    assert session.exec(select(func.count()).select_from(Report)).one() == 0


def test_feedback_is_for_the_network_leads(session: Session, services: dict[str, int]) -> None:
    visit = _held(session, services)
    with pytest.raises(PermissionDenied):
        engine.fire(
            session,
            "visit",
            visit.id,
            "give_feedback",
            actor="t",
            role=OFFICE,
            clock=FixedClock(VISIT),
            params={"risks": []},
        )


# --------------------------------------------------------------------------- the day: agenda and calendar


def test_in_person_agenda_follows_the_sop_day(session: Session, services: dict[str, int]) -> None:
    visit = _notified(session, services, VISIT, start=T0)
    sessions = agenda(visit)
    assert len(sessions) == 7
    assert sessions[0]["start"] == datetime.combine(VISIT, time(9, 0))
    assert sessions[-1]["end"] == datetime.combine(VISIT, time(17, 0))
    assert [s["title"] for s in sessions][1] == "Unit walk-around"
    assert all(a["end"] == b["start"] for a, b in zip(sessions, sessions[1:], strict=False))
    assert [s["title"] for s in sessions if s["who"] == "reviewers only"] == [
        "Review of standards against evidence",
        "Preparing high level feedback",
    ]


def test_virtual_agenda_drops_the_walk_around(session: Session, services: dict[str, int]) -> None:
    visit = _notified(session, services, VISIT, start=T0, mode="virtual")
    sessions = agenda(visit)
    assert len(sessions) == 6
    assert "Unit walk-around" not in [s["title"] for s in sessions]
    assert (sessions[0]["start"].time(), sessions[-1]["end"].time()) == (time(9, 0), time(17, 0))


def test_agenda_needs_a_date(session: Session, services: dict[str, int]) -> None:
    with pytest.raises(GuardRefused, match="no date yet"):
        agenda(_propose(session, services))


@pytest.mark.parametrize(("visit_day", "utc_hour"), [(date(2027, 6, 17), 8), (VISIT, 9)])  # BST, then GMT
def test_visit_calendar_has_one_event_per_session(
    session: Session, services: dict[str, int], visit_day: date, utc_hour: int
) -> None:
    visit = _notified(session, services, visit_day, start=visit_day - timedelta(weeks=5))
    panel = [{"name": r.name, "email": r.email, "group": "panel"} for _, r in _panel(session, visit.id)]
    scope = recipient_scope(session, visit)
    staff = [
        {"name": c.name, "email": c.email, "group": "service"}
        for role in ("service-lead", "chief-executive")
        for c in resolve(session, role, scope)
    ]
    sessions = agenda(visit)
    data = visit_calendar(
        f"Visit-{visit.id}", MRH, "West Midlands Trauma Network", sessions, panel + staff, FixedClock(T0).now()
    )
    cal = icalendar.Calendar.from_ical(data)
    events = list(cal.walk("VEVENT"))
    assert len(events) == len(sessions) == 7
    panel_emails = sorted(f"mailto:{p['email']}" for p in panel)
    everyone = sorted(f"mailto:{p['email']}" for p in panel + staff)
    assert len(panel_emails) == 3 and len(everyone) == 5
    for ev, s in zip(events, sessions, strict=True):
        start = ev["dtstart"].dt
        assert ev["dtstart"].params["TZID"] == "Europe/London"
        assert str(start.tzinfo) == "Europe/London"
        assert start.replace(tzinfo=None) == s["start"]
        assert s["title"] in str(ev["summary"])
        attendees = sorted(str(a) for a in ev.get("attendee"))
        if s["who"] == "reviewers only":
            assert attendees == panel_emails, s["title"]
        elif s["who"] == "panel and service":
            assert attendees == everyone, s["title"]
        else:  # lunch: the panel at least
            assert set(panel_emails) <= set(attendees), s["title"]
    first = events[0]["dtstart"].dt
    assert (first.hour, first.astimezone(UTC).hour) == (9, utc_hour)


def test_visit_calendar_defines_its_time_zone(session: Session, services: dict[str, int]) -> None:
    visit = _notified(session, services, VISIT, start=T0)
    data = visit_calendar("Visit-1", MRH, "WMTN", agenda(visit), [], FixedClock(T0).now())
    zones = [str(z["tzid"]) for z in icalendar.Calendar.from_ical(data).walk("VTIMEZONE")]
    assert zones == ["Europe/London"]


# --------------------------------------------------------------------------- weighting

TODAY = date(2026, 12, 11)


def _order(session: Session, policy: Policy | None = None) -> list[str]:
    return [c["service"] for c in candidates(session, "WMTN", TODAY, policy or Policy())]


def test_never_visited_services_rank_by_open_risks(
    session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    assert _order(session) == [MRH, SEVERNSIDE, BURNS]  # all equal: by name
    assert len({c["score"] for c in candidates(session, "WMTN", TODAY, Policy())}) == 1
    raise_risk("SC", service=SEVERNSIDE)
    raise_risk("IR", service=BURNS)
    ranked = candidates(session, "WMTN", TODAY, Policy())
    assert [(c["service"], c["score"], c["last_visit"]) for c in ranked] == [
        (BURNS, 46.0, None),
        (SEVERNSIDE, 41.0, None),
        (MRH, 36.0, None),
    ]
    assert {c["service"]: (c["open_ir"], c["open_sc"]) for c in ranked} == {
        BURNS: (1, 0),
        SEVERNSIDE: (0, 1),
        MRH: (0, 0),
    }


def test_closed_risks_do_not_count(session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]) -> None:
    risk = raise_risk("IR", service=BURNS)
    engine.fire(
        session, "risk", risk.id, "withdraw", actor="nm", role=NM, clock=FixedClock(TODAY), note="raised in error"
    )
    session.commit()
    assert {c["service"]: c["score"] for c in candidates(session, "WMTN", TODAY, Policy())}[BURNS] == 36.0


def test_open_risk_with_a_high_score_ranks_first(
    session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    raise_risk("SC", service=SEVERNSIDE, impact=5, likelihood=5)
    raise_risk("SC", service=BURNS)
    ranked = candidates(session, "WMTN", TODAY, Policy())
    assert [c["service"] for c in ranked] == [SEVERNSIDE, BURNS, MRH]
    assert ranked[0]["max_risk_score"] == 25 and ranked[0]["parts"]["max_risk_score"] == 12.5
    assert ranked[0]["score"] == 36 + 5 + 12.5


def test_recently_held_visit_lowers_the_score(
    session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    _held(session, services, VISIT)  # Midland Royal, 12 Nov 2026
    raise_risk("SC", service=MRH)
    ranked = candidates(session, "WMTN", TODAY, Policy())
    mrh = next(c for c in ranked if c["service"] == MRH)
    assert mrh["last_visit"] == "2026-11-12"
    assert mrh["parts"]["months_since_visit"] == 1.0  # 29 days
    assert mrh["score"] == 6.0
    assert [c["service"] for c in ranked][-1] == MRH


def test_visit_in_progress_is_flagged_and_a_cancelled_one_does_not_count(
    session: Session, services: dict[str, int]
) -> None:
    _notified(session, services, VISIT, start=T0, service=SEVERNSIDE, panel=())
    dropped = _propose(session, services, BURNS)
    _fire(session, dropped.id, "cancel", T0, note="not needed")
    by = {c["service"]: c for c in candidates(session, "WMTN", TODAY, Policy())}
    assert (by[SEVERNSIDE]["visit_in_progress"], by[BURNS]["visit_in_progress"], by[MRH]["visit_in_progress"]) == (
        True,
        False,
        False,
    )
    assert by[BURNS]["last_visit"] is None and by[BURNS]["score"] == 36.0


def test_policy_weights_change_the_order(
    session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    raise_risk("IR", service=BURNS)
    raise_risk("SC", service=SEVERNSIDE)
    assert _order(session)[:2] == [BURNS, SEVERNSIDE]
    assert _order(session, Policy(weight_open_sc=20.0))[:2] == [SEVERNSIDE, BURNS]
    flat = Policy(weight_open_ir=0.0, weight_open_sc=0.0)
    assert [c["score"] for c in candidates(session, "WMTN", TODAY, flat)] == [36.0, 36.0, 36.0]


def test_unknown_network_is_not_found(session: Session, services: dict[str, int]) -> None:
    with pytest.raises(NotFound, match="'NOPE'"):
        candidates(session, "NOPE", TODAY, Policy())


def test_candidates_cover_only_the_networks_services(session: Session, services: dict[str, int]) -> None:
    cmmtn = {c["service"] for c in candidates(session, "CMMTN", TODAY, Policy())}
    net = session.exec(select(Network).where(Network.code == "CMMTN")).one()
    expected = {s.name for s in session.exec(select(Service).where(Service.network_id == net.id))}
    assert cmmtn == expected == {MERSEY, "Wirral Coast Trauma Unit"}
