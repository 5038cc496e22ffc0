"""The appeal machine, table-driven: allowed transitions, clock triggers, refused pairs."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlmodel import Session

from models import Deadline
from models.tables import (
    Appeal,
    Report,
)
from states import engine
from states.clock import FixedClock
from states.errors import InvalidTrigger
from states.machines.spec import CLOCK_TRIGGERS
from tests.factories import person
from tests.support_appeals import (
    CAL,
    DECISION,
    MRH,
    MRH_TRUST,
    NM,
    OFFICE,
    OPERATOR,
    OUTSIDER,
    RL,
    S0,
    SPEC,
    STATEMENT,
    VISIT,
    A,
    P,
    contact_for,
    letters_to,
    row_counts,
)

DAY = date(2027, 2, 19)  # every table row fires on this day
OPEN_STATES = ("submitted", "initial_consideration", "subgroup_convened", "decided")

# (source state, trigger, role, setup, expected destination, appeal letters expected)
TABLE: list[tuple[str, str, str, dict[str, Any], str, set[str]]] = [
    (A.NEW, "submit", OFFICE, {}, A.SUBMITTED, {"appeal_acknowledgement"}),
    (A.NEW, "submit", NM, {}, A.SUBMITTED, {"appeal_acknowledgement"}),
    (A.SUBMITTED, "begin_consideration", NM, {}, A.INITIAL_CONSIDERATION, set()),
    (A.SUBMITTED, "begin_consideration", RL, {}, A.INITIAL_CONSIDERATION, set()),
    (
        A.INITIAL_CONSIDERATION,
        "add_subgroup_member",
        RL,
        {"params": {"name": OUTSIDER[0], "email": OUTSIDER[1]}},
        A.INITIAL_CONSIDERATION,
        {"subgroup_invitation"},
    ),
    (
        A.SUBGROUP_CONVENED,
        "add_subgroup_member",
        NM,
        {"subgroup": True, "params": {"name": "Dr Second", "email": "second@else.example"}},
        A.SUBGROUP_CONVENED,
        {"subgroup_invitation"},
    ),
    (A.INITIAL_CONSIDERATION, "convene_subgroup", NM, {"subgroup": True}, A.SUBGROUP_CONVENED, set()),
    (A.INITIAL_CONSIDERATION, "decide", NM, {"note": DECISION, "params": {"outcome": "not_upheld"}}, A.DECIDED, set()),
    (
        A.SUBGROUP_CONVENED,
        "decide",
        RL,
        {"subgroup": True, "note": DECISION, "params": {"outcome": "upheld"}},
        A.DECIDED,
        set(),
    ),
    (A.DECIDED, "communicate", OFFICE, {}, A.COMMUNICATED, {"appeal_decision"}),
    (A.DECIDED, "communicate", RL, {}, A.COMMUNICATED, {"appeal_decision"}),
    *[(s, "pause_clock", NM, {"deadline": "open", "note": "awaiting Trust evidence"}, s, set()) for s in OPEN_STATES],
    *[
        (s, "resume_clock", OPERATOR, {"deadline": "paused", "note": "evidence received"}, s, set())
        for s in OPEN_STATES
    ],
    *[
        (
            s,
            "extend_deadline",
            RL,
            {"deadline": "open", "note": "subgroup availability", "params": {"days": 3}},
            s,
            set(),
        )
        for s in OPEN_STATES
    ],
]


def _put_in(session: Session, services: dict[str, int], state: str, setup: dict[str, Any] | None = None) -> Appeal:
    """Test setup shortcut: a published report (one Unmet standard) and an appeal by its Trust's
    Chief Executive placed in ``state``, with what the setup asks for."""
    setup = setup or {}
    published = FixedClock(P).now()
    report = Report(
        service_id=services[MRH],
        basis_date=VISIT,
        state="published",
        published_on=P,
        approved_on=P,
        compliance=[{"ref": "T-1.2", "descriptor": "", "status": "Unmet", "comment": ""}],
        created_at=published,
        updated_at=published,
    )
    session.add(report)
    session.flush()
    at = FixedClock(S0).now()
    appeal = Appeal(
        report_id=report.id,
        service_id=services[MRH],
        appellant_contact_id=contact_for(session, "chief-executive", MRH_TRUST).id,  # type: ignore[arg-type]
        submitted_on=S0,
        statement=STATEMENT,
        grounds=[{"compliance": True}],
        state=str(state),
        created_at=at,
        updated_at=at,
        subgroup=[{"name": OUTSIDER[0], "email": OUTSIDER[1]}] if setup.get("subgroup") else [],
    )
    session.add(appeal)
    session.flush()
    if "deadline" in setup:
        paused = setup["deadline"] == "paused"
        session.add(
            Deadline(
                kind="appeal",
                item_id=appeal.id,
                name="appeal_result",
                due_on=CAL.add_weeks(S0, 8),  # type: ignore[arg-type]
                status="paused" if paused else "open",
                paused_remaining=5 if paused else None,
            )
        )
    session.commit()
    return appeal


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
    appeal = _put_in(session, services, source, setup)
    if trigger == "decide":  # four eyes: someone else proposes first
        first = engine.fire(
            session,
            "appeal",
            appeal.id,
            trigger,
            principal=person("proposer", NM),
            clock=FixedClock(DAY),  # type: ignore[arg-type]
            note=setup.get("note"),
            params=setup.get("params"),
        )
        assert first.proposed and first.event.trigger == "propose:decide" and first.row.state == source
    version = appeal.version
    before = {m.id for m in letters_to(session, "appeal", appeal.id)}  # type: ignore[arg-type]
    out = engine.fire(
        session,
        "appeal",
        appeal.id,
        trigger,
        principal=person("tester", role),
        clock=FixedClock(DAY),  # type: ignore[arg-type]
        note=setup.get("note"),
        params=setup.get("params"),
    )
    session.commit()
    assert out.row.state == dest
    assert out.row.version == version + 1
    assert (out.event.from_state, out.event.to_state, out.event.trigger, out.event.actor, out.event.role) == (
        source,
        dest,
        trigger,
        "tester",
        role,
    )
    assert {m.template for m in letters_to(session, "appeal", appeal.id) if m.id not in before} == letters  # type: ignore[arg-type]


def test_clock_triggers_move_the_result_deadline(session: Session, services: dict[str, int]) -> None:
    appeal = _put_in(session, services, "subgroup_convened", {"deadline": "open", "subgroup": True})
    due = CAL.add_weeks(S0, 8)  # Tue 13 Apr 2027
    engine.fire(
        session,
        "appeal",
        appeal.id,
        "extend_deadline",
        principal=person("rl", RL),
        clock=FixedClock(DAY),
        note="subgroup availability",  # type: ignore[arg-type]
        params={"days": 3},
    )
    session.commit()
    (d,) = engine.pending_deadlines(session, "appeal", appeal.id)  # type: ignore[arg-type]
    assert (d.name, due, d.due_on) == ("appeal_result", date(2027, 4, 13), date(2027, 4, 16))


ALLOWED = {(str(src), trig) for src, trig, *_ in TABLE}
REFUSED = [(s.value, t) for s in A for t in SPEC.triggers() if (s.value, t) not in ALLOWED]


def test_table_covers_machine() -> None:
    """Every pair the machine allows is in the table above, and vice versa."""
    machine_pairs = {(s.value, t) for s in A for t in SPEC.allowed_from(s.value)}
    assert machine_pairs == ALLOWED
    assert {p for p in ALLOWED if p[1] in CLOCK_TRIGGERS} == {(s, t) for s in OPEN_STATES for t in CLOCK_TRIGGERS}
    assert SPEC.allowed_from("new") == ["submit"] and SPEC.allowed_from("communicated") == []
    assert len(REFUSED) == len(A) * len(SPEC.triggers()) - len(ALLOWED) == 34


@pytest.mark.parametrize(("state", "trigger"), REFUSED, ids=[f"{s}-{t}" for s, t in REFUSED])
def test_refused_pairs_change_nothing(session: Session, services: dict[str, int], state: str, trigger: str) -> None:
    appeal = _put_in(session, services, state, {"subgroup": True, "deadline": "open"})
    version, counts = appeal.version, row_counts(session)
    with pytest.raises(InvalidTrigger, match=f"'{state}'"):
        engine.fire(
            session,
            "appeal",
            appeal.id,
            trigger,
            principal=person("tester", NM),
            clock=FixedClock(DAY),
            note="n",  # type: ignore[arg-type]
            params={"outcome": "upheld", "name": "X Y", "email": "x@y.example", "days": 1},
        )
    session.rollback()
    fresh = session.get(Appeal, appeal.id)
    assert fresh is not None and (fresh.state, fresh.version) == (state, version)
    assert row_counts(session) == counts
