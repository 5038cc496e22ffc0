"""Peer review visits (DOMAIN.md "Peer review visit"): the visit machine table-driven, its guards,
scheduling, the panel and its conflict rules, notification deadlines and chasing, postponement and
cancellation, high level feedback, the day's agenda and calendar, and the weighting of candidates.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlmodel import Session

from models import Deadline
from models.tables import PanelMember, Visit
from states import engine
from states.clock import FixedClock
from states.errors import GuardRefused, InvalidInput, InvalidTrigger
from states.machines.spec import get_spec
from states.machines.visit import VisitState
from tests.factories import person
from tests.support_visits import (
    NM,
    OFFICE,
    OPERATOR,
    PANEL,
    RL,
    T0,
    VISIT,
    add,
    declare,
    fire,
    letters_to,
    notified,
    prepared,
    propose,
    reviewers_by_name,
    row_counts,
)

V = VisitState
SPEC = get_spec("visit")
CLOCK_TRIGGERS = ("pause_clock", "resume_clock", "extend_deadline")
OPEN_STATES = ("proposed", "scheduled", "service_notified", "prepared", "held", "feedback_given")


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
    visit = propose(session, services)
    visit.state = str(state)
    if state not in (V.NEW, V.PROPOSED):
        visit.visit_date = VISIT
    for name, value in setup.get("fields", {}).items():
        setattr(visit, name, value)
    session.add(visit)
    reviewers = reviewers_by_name(session)
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
        params["reviewer_id"] = reviewers_by_name(session)[params["reviewer_id"]].id
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
    before_version, before_letters = visit.version, set(letters_to(session, visit.id))
    out = engine.fire(
        session,
        "visit",
        visit.id,
        trigger,
        principal=person("tester", role),
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
    assert set(letters_to(session, visit.id)) - before_letters == letters


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
    version, counts = visit.version, row_counts(session)
    with pytest.raises(InvalidTrigger, match=f"'{state}'"):
        engine.fire(
            session, "visit", visit.id, trigger, principal=person("tester", NM), clock=FixedClock(VISIT), note="n"
        )
    session.rollback()
    fresh = session.get(Visit, visit.id)
    assert fresh is not None and (fresh.state, fresh.version) == (state, version)
    assert row_counts(session) == counts


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
    visit = notified(session, services)
    for name in PANEL:
        if case.get("undeclared") == name:
            continue
        declare(
            session,
            visit.id,
            name,
            PREP_DAY,
            "examined the service's trainees in 2025" if case.get("conflict") == name else None,
        )
    fire(
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
    version, counts = visit.version, row_counts(session)
    with pytest.raises(GuardRefused, match=rule):
        engine.fire(
            session,
            "visit",
            visit.id,
            "confirm_prepared",
            principal=person("tester", OFFICE),
            clock=FixedClock(PREP_DAY),
        )
    session.rollback()
    fresh = session.get(Visit, visit.id)
    assert fresh is not None and (fresh.state, fresh.version) == ("service_notified", version)
    assert row_counts(session) == counts


@pytest.mark.parametrize(("case", "setup", "rule"), MISSING, ids=[m[0] for m in MISSING])
def test_confirm_prepared_refusal_names_only_the_unmet_rule(
    session: Session, services: dict[str, int], case: str, setup: dict[str, Any], rule: str
) -> None:
    visit = _ready_but(session, services, setup)
    with pytest.raises(GuardRefused) as err:
        engine.fire(
            session,
            "visit",
            visit.id,
            "confirm_prepared",
            principal=person("tester", OFFICE),
            clock=FixedClock(PREP_DAY),
        )
    others = {"is_preparation_settled", "is_panel_confirmed", "has_conflicts_cleared", "is_evidence_received"} - {rule}
    assert rule in str(err.value)
    assert not [o for o in others if o in str(err.value)], str(err.value)


def test_confirm_prepared_refused_with_no_panel(session: Session, services: dict[str, int]) -> None:
    visit = notified(session, services, panel=())
    fire(
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
            session,
            "visit",
            visit.id,
            "confirm_prepared",
            principal=person("tester", OFFICE),
            clock=FixedClock(PREP_DAY),
        )


@pytest.mark.parametrize("prep", ["held", "declined"])
def test_confirm_prepared_once_everything_is_in(session: Session, services: dict[str, int], prep: str) -> None:
    visit = _ready_but(session, services, {"prep": prep})
    out = fire(session, visit.id, "confirm_prepared", PREP_DAY, role=OFFICE)
    assert out.row.state == "prepared"


def test_adding_a_reviewer_unconfirms_the_panel(session: Session, services: dict[str, int]) -> None:
    visit = _ready_but(session, services, {})
    assert visit.panel_confirmed is True
    add(session, visit.id, "Ms Tessa Quinn", PREP_DAY)
    assert visit.panel_confirmed is False
    with pytest.raises(GuardRefused, match="is_panel_confirmed"):
        engine.fire(
            session,
            "visit",
            visit.id,
            "confirm_prepared",
            principal=person("tester", OFFICE),
            clock=FixedClock(PREP_DAY),
        )


def test_hold_is_refused_before_the_visit_day(session: Session, services: dict[str, int]) -> None:
    visit = prepared(session, services)
    version, counts = visit.version, row_counts(session)
    with pytest.raises(GuardRefused, match="is_visit_day_reached"):
        engine.fire(
            session,
            "visit",
            visit.id,
            "hold",
            principal=person("tester", OFFICE),
            clock=FixedClock(VISIT - timedelta(days=1)),
        )
    session.rollback()
    assert (visit.state, visit.version, row_counts(session)) == ("prepared", version, counts)
    assert fire(session, visit.id, "hold", VISIT, role=OFFICE).row.state == "held"


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
    visit = propose(session, services)
    counts = row_counts(session)
    with pytest.raises(InvalidInput, match=match):
        engine.fire(
            session,
            "visit",
            visit.id,
            "schedule",
            principal=person("tester", OFFICE),
            clock=FixedClock(T0),
            params=params,
        )
    session.rollback()
    fresh = session.get(Visit, visit.id)
    assert fresh is not None and (fresh.state, fresh.visit_date, fresh.version) == ("proposed", None, 2)
    assert row_counts(session) == counts


@pytest.mark.parametrize(
    ("mode", "expected"), [(None, "in_person"), ("in_person", "in_person"), ("virtual", "virtual")]
)
def test_schedule_sets_date_and_mode(
    session: Session, services: dict[str, int], mode: str | None, expected: str
) -> None:
    visit = propose(session, services)
    params = {"date": "2026-11-12", **({"mode": mode} if mode else {})}
    out = fire(session, visit.id, "schedule", T0, **params)
    assert (out.row.state, out.row.visit_date, out.row.mode) == ("scheduled", VISIT, expected)  # type: ignore[attr-defined]


def test_schedule_on_today_is_allowed(session: Session, services: dict[str, int]) -> None:
    visit = propose(session, services)
    assert fire(session, visit.id, "schedule", T0, date=T0.isoformat()).row.visit_date == T0  # type: ignore[attr-defined]
