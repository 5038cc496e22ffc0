"""The appeal subgroup: who may sit on it, invitations and convening."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models.accounts import User
from models.tables import (
    AccuracyItem,
    Appeal,
    Reviewer,
)
from notifications.render import rendered
from states import engine
from states.clock import FixedClock
from states.errors import GuardRefused, InvalidInput
from tests.factories import person
from tests.support_appeals import (
    CLAIM,
    FEEDBACK,
    LEAD,
    MANAGER,
    MRH_TRUST,
    NM,
    ORGANISER,
    OUTSIDER,
    RL,
    STATEMENT,
    WRITER,
    P,
    World,
    considering,
    emails,
    letters_to,
    row_counts,
    world,  # noqa: F401 (pytest fixtures)
)

MEMBER_DAY = P + timedelta(days=10)


def _add_member(session: Session, appeal_id: int, name: str, email: str) -> engine.Outcome:
    out = engine.fire(
        session,
        "appeal",
        appeal_id,
        "add_subgroup_member",
        principal=person(MANAGER, NM),
        clock=FixedClock(MEMBER_DAY),
        params={"name": name, "email": email},
    )
    session.commit()
    return out


def _refused_member(session: Session, appeal_id: int, name: str, email: str, why: str) -> None:
    counts = row_counts(session)
    with pytest.raises(GuardRefused, match="prior involvement") as info:
        engine.fire(
            session,
            "appeal",
            appeal_id,
            "add_subgroup_member",
            principal=person(MANAGER, NM),
            clock=FixedClock(MEMBER_DAY),
            params={"name": name, "email": email},
        )
    session.rollback()
    assert name in str(info.value) and why in str(info.value)
    row = session.get(Appeal, appeal_id)
    assert row is not None and (row.subgroup, row.state, row.version) == ([], "initial_consideration", 3)
    assert row_counts(session) == counts


def test_subgroup_refuses_anyone_involved_in_the_review(db: Engine, session: Session, world: World) -> None:
    row = considering(db, session, world)
    holt = session.exec(select(Reviewer).where(Reviewer.name == "Ms Carys Holt")).one()
    # a panel member, by name (any case) and by email (any case)
    _refused_member(session, row.id, "MS CARYS HOLT", "c.holt@private.example", "sat on the review panel")  # type: ignore[arg-type]
    _refused_member(session, row.id, "C. Holt", holt.email.upper(), "sat on the review panel")  # type: ignore[arg-type]
    # whoever fired a transition on the visit or on the report
    _refused_member(session, row.id, ORGANISER, "vince@private.example", "acted on the visit")  # type: ignore[arg-type]
    _refused_member(session, row.id, FEEDBACK, "fern@private.example", "acted on the")  # type: ignore[arg-type]
    _refused_member(session, row.id, WRITER, "rita@private.example", "acted on the report")  # type: ignore[arg-type]
    # a decider of a factual accuracy item
    _refused_member(session, row.id, LEAD, "tom@private.example", "decide_inaccuracy")  # type: ignore[arg-type]


def test_subgroup_involvement_ignores_spacing_and_knows_accounts(db: Engine, session: Session, world: World) -> None:
    """Issue 14: a name typed with other spacing is the same name; a member whose email is the
    account of someone who acted on the review is refused whatever name they are given as."""
    row = considering(db, session, world)
    _refused_member(session, row.id, "mr  VINCE   organiser", "vo@private.example", "acted on the visit")  # type: ignore[arg-type]
    organiser = person(ORGANISER, "network-office")  # the account the visit's transitions were fired by
    session.add(User(id=organiser.user_id, name="V. Organiser-Smith", email="v.os@private.example"))
    session.commit()
    _refused_member(session, row.id, "Vincent Smith", "V.OS@private.example", "acted on the visit")  # type: ignore[arg-type]


def test_subgroup_refuses_a_recorded_factual_accuracy_decider(db: Engine, session: Session, world: World) -> None:
    """Setup shortcut: an accuracy item whose deciders fired nothing themselves (e.g. recorded on their behalf)."""
    row = considering(db, session, world)
    session.add(
        AccuracyItem(
            report_id=world.report_id,
            text=CLAIM,
            manager_decision="accepted",
            manager_actor="Dr Quiet Decider",
            lead_decision="accepted",
            lead_actor="Ms Silent Lead",
        )
    )
    session.commit()
    _refused_member(session, row.id, "dr quiet decider", "quiet@private.example", "decided factual accuracy items")  # type: ignore[arg-type]
    _refused_member(session, row.id, "Ms Silent Lead", "silent@private.example", "decided factual accuracy items")  # type: ignore[arg-type]


def test_an_uninvolved_person_is_invited_and_the_subgroup_convened(db: Engine, session: Session, world: World) -> None:
    row = considering(db, session, world)
    with pytest.raises(GuardRefused, match="has_subgroup"):
        engine.fire(
            session, "appeal", row.id, "convene_subgroup", principal=person(MANAGER, NM), clock=FixedClock(MEMBER_DAY)
        )  # type: ignore[arg-type]
    session.rollback()
    out = _add_member(session, row.id, *OUTSIDER)  # type: ignore[arg-type]
    assert (out.row.state, out.row.subgroup) == ("initial_consideration", [{"name": OUTSIDER[0], "email": OUTSIDER[1]}])  # type: ignore[attr-defined]
    (invite,) = letters_to(session, "appeal", row.id, "subgroup_invitation")  # type: ignore[arg-type]
    assert emails(invite.to) == [OUTSIDER[1]] and sorted(p["role"] for p in invite.cc) == [NM, RL]
    assert STATEMENT in rendered(invite).body_text and MRH_TRUST in rendered(invite).body_text
    with pytest.raises(GuardRefused, match="already on the subgroup"):
        engine.fire(
            session,
            "appeal",
            row.id,
            "add_subgroup_member",
            principal=person(MANAGER, NM),
            clock=FixedClock(MEMBER_DAY),  # type: ignore[arg-type]
            params={"name": "Una O.", "email": OUTSIDER[1].upper()},
        )
    session.rollback()
    with pytest.raises(InvalidInput, match="needs name"):
        engine.fire(
            session,
            "appeal",
            row.id,
            "add_subgroup_member",
            principal=person(MANAGER, NM),
            clock=FixedClock(MEMBER_DAY),  # type: ignore[arg-type]
            params={"name": "No Email", "email": "nobody"},
        )
    session.rollback()
    out = engine.fire(
        session, "appeal", row.id, "convene_subgroup", principal=person(MANAGER, NM), clock=FixedClock(MEMBER_DAY)
    )  # type: ignore[arg-type]
    session.commit()
    assert out.row.state == "subgroup_convened"
