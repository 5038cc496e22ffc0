"""The perinatal escalation ladder (seed 004), table-driven: every allowed (state, trigger),
every refused one, the monthly board review by the sweep, and the configurable level names.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlmodel import Session, func, select

from models import OutboxMessage
from models.perinatal import PerinatalConcern
from notifications.render import rendered
from states import engine
from states.clock import FixedClock
from states.errors import GuardRefused, InvalidInput, InvalidTrigger, PermissionDenied
from states.machines.perinatal import ADDRESSEES
from states.machines.spec import CLOCK_TRIGGERS
from tests.factories import person
from tests.support_perinatal import (  # noqa: F401 (pytest fixtures)
    LATER,
    LQSG,
    MRH,
    NM,
    RAISED,
    RQC,
    SPEC,
    S,
    maternity,
    put_in,
    raise_concern,
    row_counts,
    templates,
)


def _last_outbox_id(session: Session) -> int:
    return session.exec(select(func.max(OutboxMessage.id))).one() or 0


AFTER_DUE = date(2027, 1, 4)  # the December board review (due 31 Dec) has passed
OPEN = [S.PROVIDER, S.LMS_ICS, S.REGIONAL, S.NATIONAL]
# (source, trigger, role, setup, expected destination, letters queued)
TABLE: list[tuple[str, str, str, dict[str, Any], str, set[str]]] = [
    (
        S.PROVIDER,
        "escalate",
        NM,
        {"note": "action plan not delivering", "params": LQSG},
        S.LMS_ICS,
        {"perinatal_escalation"},
    ),
    (
        S.LMS_ICS,
        "escalate",
        "network-office",
        {"note": "no improvement", "params": RQC},
        S.REGIONAL,
        {"perinatal_escalation"},
    ),
    (
        S.REGIONAL,
        "escalate",
        "regional-lead",
        {"note": "needs national support", "params": LQSG},
        S.NATIONAL,
        {"perinatal_escalation"},
    ),
    (S.LMS_ICS, "deescalate", NM, {"note": "improving"}, S.PROVIDER, {"perinatal_deescalation"}),
    (S.REGIONAL, "deescalate", NM, {"note": "improving"}, S.LMS_ICS, {"perinatal_deescalation"}),
    (S.NATIONAL, "deescalate", "operator", {"note": "support agreed locally"}, S.REGIONAL, {"perinatal_deescalation"}),
    (
        S.REGIONAL,
        "refer_to_jsog",
        NM,
        {"note": "system-wide issue", "params": RQC},
        S.REGIONAL,
        {"perinatal_regional_referral"},
    ),
    (
        S.REGIONAL,
        "request_cqc_inspection",
        NM,
        {"note": "triangulated data", "params": RQC},
        S.REGIONAL,
        {"perinatal_regional_referral"},
    ),
    *[
        (
            s,
            "record_forum_decision",
            "network-office",
            {"params": {**LQSG, "forum": "lms_ics", "decision": "not to escalate"}},
            s,
            set(),
        )
        for s in OPEN
    ],
    *[(s, "record_board_review", "network-office", {"params": {"reviewed_on": "2026-12-17"}}, s, set()) for s in OPEN],
    *[(s, "board_review_missed", "system", {"day": AFTER_DUE}, s, {"perinatal_board_review_overdue"}) for s in OPEN],
    *[(s, "close", NM, {"note": "assured by the board"}, S.CLOSED, {"perinatal_closed"}) for s in OPEN],
]


@pytest.mark.parametrize(
    ("source", "trigger", "role", "setup", "dest", "letters"), TABLE, ids=[f"{t[0]}-{t[1]}-{t[2]}" for t in TABLE]
)
def test_allowed_transitions(
    session: Session,
    raise_concern: Callable[..., PerinatalConcern],
    source: str,
    trigger: str,
    role: str,
    setup: dict[str, Any],
    dest: str,
    letters: set[str],
) -> None:
    row = put_in(session, raise_concern(), source)
    version, since = row.version, _last_outbox_id(session)
    out = engine.fire(
        session,
        "perinatal",
        row.id,
        trigger,
        principal=person("tester", role),
        clock=FixedClock(setup.get("day", LATER)),
        note=setup.get("note"),
        params=setup.get("params"),
    )
    session.commit()
    assert out.row.state == dest and out.row.version == version + 1
    assert (out.event.from_state, out.event.to_state, out.event.trigger, out.event.actor) == (
        source,
        dest,
        trigger,
        "tester",
    )
    assert set(templates(session, row.id, since)) == letters
    pending = engine.pending_deadlines(session, "perinatal", row.id)
    # an open concern always has exactly one board review ahead; a closed one has none
    assert [d.name for d in pending] == ([] if dest == S.CLOSED else ["board_review"])


ALLOWED = {(str(src), trig) for src, trig, *_ in TABLE} | {(S.NEW.value, "raise")}
ALLOWED |= {(s.value, t) for s in OPEN for t in CLOCK_TRIGGERS}
REFUSED = [(s.value, t) for s in S for t in SPEC.triggers() if (s.value, t) not in ALLOWED]


def test_table_covers_machine() -> None:
    assert {(s.value, t) for s in S for t in SPEC.allowed_from(s.value)} == ALLOWED


@pytest.mark.parametrize(("state", "trigger"), REFUSED, ids=[f"{s}-{t}" for s, t in REFUSED])
def test_refused_pairs_change_nothing(
    session: Session, raise_concern: Callable[..., PerinatalConcern], state: str, trigger: str
) -> None:
    row = put_in(session, raise_concern(), state)
    version, counts = row.version, row_counts(session)
    with pytest.raises(InvalidTrigger, match=f"'{state}'"):
        engine.fire(
            session, "perinatal", row.id, trigger, principal=person("tester", NM), clock=FixedClock(LATER), note="n"
        )
    session.rollback()
    fresh = session.get(PerinatalConcern, row.id)
    assert fresh is not None and (fresh.state, fresh.version) == (state, version)
    assert row_counts(session) == counts


def test_a_concern_must_be_about_a_maternity_or_neonatal_service(session: Session, services: dict[str, int]) -> None:
    row = PerinatalConcern(service_id=services[MRH], title="t", raised_on=RAISED, state="new")
    with pytest.raises(GuardRefused, match="is_perinatal_service"):
        engine.create(session, "perinatal", row, "raise", principal=person("nm", NM), clock=FixedClock(RAISED))


def test_escalation_needs_a_reason_and_a_staff_role(
    session: Session, raise_concern: Callable[..., PerinatalConcern]
) -> None:
    row = raise_concern()
    with pytest.raises(InvalidInput, match="needs a reason"):
        engine.fire(session, "perinatal", row.id, "escalate", principal=person("nm", NM), clock=FixedClock(LATER))
    with pytest.raises(PermissionDenied, match="may not fire 'close'"):
        engine.fire(
            session,
            "perinatal",
            row.id,
            "close",
            principal=person("o", "network-office"),
            clock=FixedClock(LATER),
            note="x",
        )
    with pytest.raises(GuardRefused, match="has_board_review_overdue"):  # December's review is not due yet
        engine.fire(
            session, "perinatal", row.id, "board_review_missed", principal=person("nm", NM), clock=FixedClock(LATER)
        )


def test_each_level_writes_to_its_people_with_the_seeds_actions(
    session: Session, raise_concern: Callable[..., PerinatalConcern]
) -> None:
    row = raise_concern()
    marks = {
        S.PROVIDER: "action plan is agreed as a priority",
        S.LMS_ICS: "MatNeoSIP",
        S.REGIONAL: "unannounced CQC inspection",
        S.NATIONAL: "entry into the Maternity Safety Support Programme",
    }
    for level in OPEN:
        if level != S.PROVIDER:
            engine.fire(
                session,
                "perinatal",
                row.id,
                "escalate",
                principal=person("nm", NM),
                clock=FixedClock(LATER),
                note=f"to {level}",
                params=RQC,
            )
        session.commit()
        letter = session.exec(
            select(OutboxMessage)
            .where(
                OutboxMessage.kind == "perinatal",
                OutboxMessage.template == "perinatal_escalation",
                OutboxMessage.category == "letter",
            )
            .order_by(OutboxMessage.id.desc())
        ).first()  # type: ignore[union-attr]
        assert letter is not None
        assert marks[level] in " ".join(rendered(letter).body_text.split()), level
        assert {p["role"] for p in letter.to} == set(ADDRESSEES[level][0]), level
    history = session.get(PerinatalConcern, row.id).level_history  # type: ignore[union-attr]
    assert [h["level"] for h in history] == ["provider", "lms_ics", "regional", "national"]
    assert [h["note"] for h in history][1:] == ["to lms_ics", "to regional", "to national"]
