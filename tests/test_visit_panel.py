"""The visit panel: who may review a service, disciplines, invitations and removals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from models import OutboxMessage
from models.tables import Visit
from notifications.render import rendered
from states import engine
from states.clock import FixedClock
from states.errors import GuardRefused, InvalidInput
from states.machines.visit import panel as _panel
from states.machines.visit import panel_view
from tests.factories import person
from tests.support_visits import (
    MERSEY,
    MRH,
    OFFICE,
    T0,
    add,
    declare,
    fire,
    letters_to,
    propose,
    reviewers_by_name,
    row_counts,
)

# --------------------------------------------------------------------------- the panel


def _refused_panel(session: Session, visit: Visit, name: str, match: str) -> None:
    counts = row_counts(session)
    with pytest.raises(GuardRefused, match=match):
        engine.fire(
            session,
            "visit",
            visit.id,
            "add_panel_member",
            principal=person("tester", OFFICE),
            clock=FixedClock(T0),
            params={"reviewer_id": reviewers_by_name(session)[name].id},
        )
    session.rollback()
    assert row_counts(session) == counts
    assert name not in [r.name for _, r in _panel(session, visit.id)]
    assert "panel_invitation" not in letters_to(session, visit.id)


def test_reviewer_from_the_organisation_under_review_is_refused(session: Session, services: dict[str, int]) -> None:
    visit = propose(session, services, MRH)
    _refused_panel(
        session,
        visit,
        "Dr Felix Okoro",
        r"Dr Felix Okoro works for Midland Royal Hospitals NHS Trust, the organisation under review",
    )


def test_reviewer_from_the_shared_pathway_is_refused(session: Session, services: dict[str, int]) -> None:
    visit = propose(session, services, MRH)
    _refused_panel(session, visit, "Ms Ada Lindqvist", r"shared pathway \(Central West Midlands trauma pathway\)")


def test_same_reviewers_accepted_for_a_service_outside_their_trust_and_pathway(
    session: Session, services: dict[str, int]
) -> None:
    visit = propose(session, services, MERSEY)
    for name in ("Dr Felix Okoro", "Ms Ada Lindqvist"):
        add(session, visit.id, name, T0)
    members, _ = panel_view(session, visit)
    assert [(m["name"], m["other_network"], m["network"]) for m in members] == [
        ("Dr Felix Okoro", True, "WMTN"),
        ("Ms Ada Lindqvist", True, "WMTN"),
    ]


def test_reviewer_from_another_network_is_accepted_and_marked(session: Session, services: dict[str, int]) -> None:
    visit = propose(session, services, MRH)  # a WMTN service
    add(session, visit.id, "Dr Maya Fenwick", T0)  # home network CMMTN
    add(session, visit.id, "Ms Carys Holt", T0)  # home network WMTN
    members, _ = panel_view(session, visit)
    by_name = {m["name"]: m for m in members}
    assert by_name["Dr Maya Fenwick"]["other_network"] is True
    assert by_name["Dr Maya Fenwick"]["network"] == "CMMTN"
    assert by_name["Dr Maya Fenwick"]["organisation"] == "Mersey Harbour Hospitals NHS Trust"
    assert by_name["Ms Carys Holt"]["other_network"] is False


def test_panel_missing_disciplines_are_warned(session: Session, services: dict[str, int]) -> None:
    visit = propose(session, services, MRH)
    add(session, visit.id, "Dr Maya Fenwick", T0)  # clinician
    add(session, visit.id, "Ms Carys Holt", T0)  # AHP
    add(session, visit.id, "Ms Tessa Quinn", T0, observer="yes")  # commissioning, but only observing
    members, warnings = panel_view(session, visit)
    assert warnings[0] == (
        "panel has no Nurse, Management, Commissioning, Service user member: the SOP asks for a multidisciplinary panel"
    )
    assert {m["name"]: m["discipline"] for m in members}["Ms Tessa Quinn"] == "observer"
    assert "Dr Maya Fenwick has not returned a conflict-of-interest declaration" in warnings
    declare(session, visit.id, "Dr Maya Fenwick", T0, "was a trainee at the Trust")
    _, warnings = panel_view(session, visit)
    assert "Dr Maya Fenwick declared a conflict: was a trainee at the Trust" in warnings


def test_full_panel_has_no_discipline_warning(session: Session, services: dict[str, int]) -> None:
    visit = propose(session, services, MRH)
    for name in (
        "Dr Maya Fenwick",
        "Mr Idris Vaughan",
        "Ms Carys Holt",
        "Mr Rohan Mehta",
        "Ms Tessa Quinn",
        "Mrs Joan Pryce",
    ):
        add(session, visit.id, name, T0)
    _, warnings = panel_view(session, visit)
    assert not [w for w in warnings if w.startswith("panel has no")]
    assert "Mrs Joan Pryce has not had reviewer training" in warnings


def test_adding_a_reviewer_twice_is_refused(session: Session, services: dict[str, int]) -> None:
    visit = propose(session, services, MRH)
    add(session, visit.id, "Ms Carys Holt", T0)
    counts = row_counts(session)
    with pytest.raises(GuardRefused, match="already on the panel"):
        add(session, visit.id, "Ms Carys Holt", T0)
    session.rollback()
    assert row_counts(session) == counts
    assert len(_panel(session, visit.id)) == 1


def test_retired_reviewer_is_refused_from_the_retirement_date(session: Session, services: dict[str, int]) -> None:
    """A reviewer retired (states.services.contacts.retire_reviewer) is not added to a panel from the
    retirement date, as of the clock's date; before that date the reviewer still may be."""
    from states.services.contacts import retire_reviewer

    retire_reviewer(
        session,
        reviewers_by_name(session)["Ms Carys Holt"].id,
        effective=T0 + timedelta(days=1),
        principal=person("tester", OFFICE),
        clock=FixedClock(T0),
    )
    session.commit()
    visit = propose(session, services, MRH)
    counts = row_counts(session)
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
            principal=person("tester", OFFICE),
            clock=FixedClock(T0 + timedelta(days=1)),
            params={"reviewer_id": reviewers_by_name(session)["Ms Carys Holt"].id},
        )
    session.rollback()
    assert row_counts(session) == counts
    assert "panel_invitation" not in letters_to(session, visit.id)
    add(session, visit.id, "Ms Carys Holt", T0)  # the day before the retirement: still a reviewer
    assert [r.name for _, r in _panel(session, visit.id)] == ["Ms Carys Holt"]


def test_panel_invitation_goes_to_the_reviewers_own_email(session: Session, services: dict[str, int]) -> None:
    visit = propose(session, services, MRH)
    fire(session, visit.id, "schedule", T0, date="2026-11-12")
    add(session, visit.id, "Dr Maya Fenwick", T0)
    (msg,) = session.exec(
        select(OutboxMessage).where(OutboxMessage.kind == "visit", OutboxMessage.template == "panel_invitation")
    ).all()
    assert [p["email"] for p in msg.to] == ["maya.fenwick@reviewers.nhs.example"]
    assert [p["role"] for p in msg.cc] == ["network-office"]
    assert "Dear Dr Maya Fenwick" in rendered(msg).body_text
    assert "Thu 12 Nov 2026" in rendered(msg).subject and MRH in rendered(msg).subject


def test_remove_panel_member_needs_a_reason_and_removes(session: Session, services: dict[str, int]) -> None:
    visit = propose(session, services, MRH)
    add(session, visit.id, "Ms Carys Holt", T0)
    rid = reviewers_by_name(session)["Ms Carys Holt"].id
    with pytest.raises(InvalidInput, match="needs a reason"):
        engine.fire(
            session,
            "visit",
            visit.id,
            "remove_panel_member",
            principal=person("t", OFFICE),
            clock=FixedClock(T0),
            params={"reviewer_id": rid},
        )
    session.rollback()
    fire(session, visit.id, "remove_panel_member", T0, role=OFFICE, note="unwell", reviewer_id=rid)
    assert _panel(session, visit.id) == []
    with pytest.raises(GuardRefused, match="not on the panel"):
        declare(session, visit.id, "Ms Carys Holt", T0)
