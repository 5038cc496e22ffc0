"""MSSP through the engine: recorded ratings, exit proposals, referrals, refused assessments."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlmodel import Session, func, select

from models import AuditEvent, Network, OutboxMessage, Service
from models.perinatal import CqcRating, MsspCase
from notifications.render import rendered
from states import engine
from states.clock import FixedClock
from states.errors import InvalidInput, MissingActor, PermissionDenied
from states.machines.mssp import (
    CRITERIA,
    RATING_CRITERIA,
    REFERRAL_ROUTES,
)
from states.principal import Grant, Principal
from states.services.mssp import decide, record_cqc_assessment, refer_trust
from tests.factories import person
from tests.support_mssp import (
    RI,
    TODAY,
    G,
    I,
    M,
    letters_to,
    record,
    trust,  # noqa: F401 (pytest fixtures)
)


def test_a_recorded_inadequate_rating_enters_mssp_through_the_engine(session: Session, trust: tuple[int, int]) -> None:
    first = record(session, trust, date(2025, 3, 1), G, G, G)
    assert first.criteria == [] and first.entered is None
    out = record(session, trust, date(2026, 11, 20), I, I, RI)
    assert out.previous is not None and out.previous.id == first.rating.id
    case = out.entered
    assert case is not None and case.state == M.IN_PROGRAMME
    assert case.entry_criteria == ["overall_inadequate", "dropped_safe", "dropped_well_led"]
    assert (case.entered_on, case.entry_rating_id) == (TODAY, out.rating.id)
    assert (case.baseline["safe"], case.baseline["well_led"], case.baseline["assessed_on"]) == (I, RI, "2026-11-20")
    (event,) = engine.history(session, "mssp", case.id)
    assert (event.trigger, event.from_state, event.to_state, event.actor) == ("enter", "new", "in_programme", "office")
    assert event.data["params"]["criteria"] == case.entry_criteria and "overall rating of Inadequate" in (
        event.note or ""
    )
    assert letters_to(session, case.id) == ["mssp_entry"]
    letter = session.exec(select(OutboxMessage).where(OutboxMessage.template == "mssp_entry")).one()
    assert {p["role"] for p in letter.to} == {"chief-executive", "service-lead"}
    assert "msscg" in {p["role"] for p in letter.cc}
    body = " ".join(rendered(letter).body_text.split())
    assert (
        "an overall rating of Inadequate" in body and "Safe from Inadequate, Well-led from Requires Improvement" in body
    )


def _decide(
    session: Session,
    case_id: int,
    decision: str,
    day: str = "2026-12-10",
    by: str = "MSSCG co-chairs, meeting of 10 Dec",
    actor: str = "office",
    role: str = "network-office",
) -> Any:
    out = decide(
        session,
        case_id,
        decision,
        decided_by=by,
        decided_on=day,
        principal=person(actor, role),
        clock=FixedClock(TODAY),
    )
    session.commit()
    return out


def test_exit_is_proposed_when_safe_and_well_led_each_improve_and_decided_by_the_msscg(
    session: Session, trust: tuple[int, int]
) -> None:
    """Changed for DOMAIN.md (issue 12 item 15): the exit criterion no longer exits the Trust; it
    proposes exit to the MSSCG, whose decision (exit) is recorded."""
    case = record(session, trust, date(2026, 1, 10), RI, I, RI).entered
    assert case is not None
    only_safe = record(session, trust, date(2026, 5, 1), RI, RI, RI)
    assert only_safe.continuing == [case] and only_safe.exit_proposed == [] and only_safe.entered is None
    only_well_led = record(session, trust, date(2026, 8, 1), RI, I, G)
    assert only_well_led.continuing == [case] and case.state == M.IN_PROGRAMME
    assert only_well_led.entered is None  # already in the programme: no second case although RI + Safe Inadequate
    both = record(session, trust, date(2026, 11, 1), G, RI, G)
    assert both.exit_proposed == [case] and case.state == M.EXIT_PROPOSED and case.exited_on is None
    assert (case.exit_proposed_on, case.exit_rating_id) == (TODAY, both.rating.id)
    assert letters_to(session, case.id) == ["mssp_entry", "mssp_exit_proposed"]
    proposal = session.exec(select(OutboxMessage).where(OutboxMessage.template == "mssp_exit_proposed")).one()
    assert {p["role"] for p in proposal.to} == {"msscg"}
    assert "Exit is proposed to the Maternity Safety Surveillance and Concerns Group" in " ".join(
        rendered(proposal).body_text.split()
    )
    with pytest.raises(InvalidInput, match="decided_on 2026-12-12 is after today"):
        decide(
            session,
            case.id,
            "exit",
            decided_by="MSSCG",
            decided_on="2026-12-12",
            principal=person("office", "network-office"),
            clock=FixedClock(TODAY),
        )
    session.rollback()
    out = _decide(session, case.id, "exit", day="2026-12-11")
    case = session.get(MsspCase, case.id)
    assert case is not None and case.state == M.EXITED and case.exited_on == date(2026, 12, 11)
    assert case.decisions == [
        {
            "question": "exit",
            "decision": "exit",
            "forum": "Maternity Safety Surveillance and Concerns Group (MSSCG)",
            "decided_by": "MSSCG co-chairs, meeting of 10 Dec",
            "decided_on": "2026-12-11",
            "recorded_by": "office",
            "recorded_role": "network-office",
            "recorded_on": "2026-12-11",
            "note": None,
        }
    ]
    assert (out.event.trigger, out.event.from_state, out.event.to_state) == ("decide_exit", "exit_proposed", "exited")
    assert out.event.data["params"]["decided_by"] == "MSSCG co-chairs, meeting of 10 Dec"
    assert [(e.trigger, e.to_state) for e in engine.history(session, "mssp", case.id)] == [
        ("enter", "in_programme"),
        ("record_assessment", "in_programme"),
        ("record_assessment", "in_programme"),
        ("record_assessment", "exit_proposed"),
        ("decide_exit", "exited"),
    ]
    assert [a["exit_proposed"] for a in case.assessments] == [False, False, True]
    assert letters_to(session, case.id) == ["mssp_entry", "mssp_exit_proposed", "mssp_exit"]
    exit_letter = session.exec(select(OutboxMessage).where(OutboxMessage.template == "mssp_exit")).one()
    body = " ".join(rendered(exit_letter).body_text.split())
    assert (
        "Safe: Inadequate -> Requires Improvement" in body and "Decided by: MSSCG co-chairs, meeting of 10 Dec" in body
    )
    assert session.exec(select(func.count()).select_from(MsspCase)).one() == 1


def test_the_msscg_may_decide_a_trust_remains_and_a_later_assessment_proposes_exit_again(
    session: Session, trust: tuple[int, int]
) -> None:
    case = record(session, trust, date(2026, 1, 10), I, I, I).entered
    assert case is not None
    assert record(session, trust, date(2026, 6, 1), RI, RI, RI).exit_proposed == [case]
    later = record(session, trust, date(2026, 7, 1), RI, RI, RI)  # while the proposal waits: recorded, nothing decided
    assert later.continuing == [case] and session.get(MsspCase, case.id).state == M.EXIT_PROPOSED  # type: ignore[union-attr]
    out = _decide(session, case.id, "Remain", day="2026-12-11")
    assert out.row.state == M.IN_PROGRAMME and out.row.exit_proposed_on is None and out.row.exited_on is None
    assert out.row.decisions[-1]["decision"] == "remain"
    assert letters_to(session, case.id)[-1] == "mssp_exit_declined"
    assert record(session, trust, date(2026, 11, 1), G, G, G).exit_proposed == [case]


def test_hsib_identification_refers_the_trust_and_the_msscg_decides_entry(
    session: Session, trust: tuple[int, int]
) -> None:
    """Changed for DOMAIN.md (issue 12 item 15): an HSIB identification with no rating criterion
    used to enter the Trust automatically; it now refers it to the MSSCG."""
    record(session, trust, date(2025, 3, 1), G, G, G)
    out = record(session, trust, date(2026, 3, 1), G, G, G, hsib_concern=True)
    assert out.entered is None and out.referred is not None
    case = out.referred
    assert (case.state, case.entry_criteria, case.referred_on, case.entered_on) == (
        M.REFERRED,
        ["hsib_concern"],
        TODAY,
        None,
    )
    assert letters_to(session, case.id) == ["mssp_referral"]
    letter = session.exec(select(OutboxMessage).where(OutboxMessage.template == "mssp_referral")).one()
    assert {p["role"] for p in letter.to} == {"msscg"}
    assert "identified to the CQC with concerns by HSIB" in " ".join(rendered(letter).body_text.split())
    # a second HSIB flag while the decision is awaited: no second referral
    again = record(session, trust, date(2026, 4, 1), G, G, G, hsib_concern=True)
    assert again.referred is None and again.awaiting == [case]
    with pytest.raises(PermissionDenied, match="may not fire 'decide_entry'"):
        decide(
            session,
            case.id,
            "enter",
            decided_by="MSSCG",
            decided_on="2026-12-01",
            principal=person("sweeper", "system"),
            clock=FixedClock(TODAY),
        )
    session.rollback()
    with pytest.raises(InvalidInput, match="name who decided"):
        decide(
            session,
            case.id,
            "enter",
            decided_by=" ",
            decided_on="2026-12-01",
            principal=person("o", "network-office"),
            clock=FixedClock(TODAY),
        )
    session.rollback()
    with pytest.raises(InvalidInput, match="decision 'maybe'"):
        decide(
            session,
            case.id,
            "maybe",
            decided_by="MSSCG",
            decided_on="2026-12-01",
            principal=person("o", "network-office"),
            clock=FixedClock(TODAY),
        )
    session.rollback()
    out2 = _decide(session, case.id, "enter", day="2026-12-11")
    case = session.get(MsspCase, case.id)
    assert case is not None and case.state == M.IN_PROGRAMME and case.entered_on == date(2026, 12, 11)
    assert case.baseline["assessed_on"] == "2026-04-01"  # the latest recorded rating is the baseline for exit
    assert case.decisions[0]["question"] == "entry" and case.decisions[0]["decision"] == "enter"
    assert out2.event.to_state == "in_programme" and out2.event.role == "network-office"
    entry = session.exec(select(OutboxMessage).where(OutboxMessage.template == "mssp_entry")).one()
    body = " ".join(rendered(entry).body_text.split())
    assert "has decided that the maternity services" in body and "Decided by: MSSCG co-chairs" in body


@pytest.mark.parametrize("flag", ["warning_notice", "dhsc_nhse_review_request", "hsib_concern"])
def test_every_non_rating_route_refers_never_enters(session: Session, trust: tuple[int, int], flag: str) -> None:
    out = record(session, trust, date(2026, 3, 1), G, G, G, **{flag: True})
    assert out.entered is None and out.referred is not None and out.referred.state == M.REFERRED


def test_rating_criteria_and_referral_routes_split_the_criteria() -> None:
    assert set(RATING_CRITERIA) | set(REFERRAL_ROUTES) == set(CRITERIA) and not set(RATING_CRITERIA) & set(
        REFERRAL_ROUTES
    )


def test_the_msscg_may_decide_a_referred_trust_does_not_enter(session: Session, trust: tuple[int, int]) -> None:
    case = record(session, trust, date(2026, 3, 1), G, G, G, warning_notice=True).referred
    assert case is not None
    out = _decide(session, case.id, "not-enter", day="2026-12-11")
    assert out.row.state == M.NOT_ENTERED and out.row.entered_on is None
    assert letters_to(session, case.id) == ["mssp_referral", "mssp_not_entered"]
    with pytest.raises(InvalidInput, match="'not_entered'"):
        decide(
            session,
            case.id,
            "enter",
            decided_by="MSSCG",
            decided_on="2026-12-01",
            principal=person("o", "network-office"),
            clock=FixedClock(TODAY),
        )


def test_a_referred_trust_whose_next_assessment_meets_a_rating_criterion_enters_automatically(
    session: Session, trust: tuple[int, int]
) -> None:
    record(session, trust, date(2025, 3, 1), G, G, G)
    case = record(session, trust, date(2026, 3, 1), G, G, G, dhsc_nhse_review_request=True).referred
    assert case is not None
    out = record(session, trust, date(2026, 9, 1), I, RI, RI)
    assert out.entered is not None and out.entered.id == case.id and out.entered.state == M.IN_PROGRAMME
    assert out.entered.entry_criteria == ["review_request", "overall_inadequate", "dropped_safe", "dropped_well_led"]
    assert [e.trigger for e in engine.history(session, "mssp", case.id)] == ["refer", "enter"]


def test_refer_without_an_assessment(session: Session, trust: tuple[int, int]) -> None:
    case = refer_trust(
        session,
        trust[0],
        trust[1],
        ["hsib"],
        principal=person("office", "network-office"),
        clock=FixedClock(TODAY),
        note="HSIB letter",
    )
    session.commit()
    assert case.state == M.REFERRED and case.entry_criteria == ["hsib_concern"] and case.entry_rating_id is None
    with pytest.raises(InvalidInput, match="already open"):
        refer_trust(
            session,
            trust[0],
            trust[1],
            ["review-request"],
            principal=person("office", "network-office"),
            clock=FixedClock(TODAY),
        )
    with pytest.raises(InvalidInput, match="route 'gossip'"):
        refer_trust(
            session,
            trust[0],
            trust[1],
            ["gossip"],
            principal=person("office", "network-office"),
            clock=FixedClock(TODAY),
        )
    session.rollback()
    out = _decide(session, case.id, "enter", day="2026-12-11")
    assert out.row.state == M.IN_PROGRAMME and out.row.baseline == {}
    first = record(session, trust, date(2026, 12, 11), RI, RI, RI)  # the first rating becomes the baseline
    assert first.continuing == [out.row] and out.row.baseline["safe"] == RI


@pytest.mark.parametrize(
    ("kw", "exc", "message"),
    [
        ({"day": date(2026, 12, 1)}, InvalidInput, "record assessments in date order"),
        ({"day": date(2026, 12, 12), "clock": TODAY}, InvalidInput, "after today"),
        ({"overall": "Excellent"}, InvalidInput, "Overall 'Excellent'"),
        ({"role": "auditor"}, PermissionDenied, "may not record a CQC assessment"),
        ({"principal": "office"}, MissingActor, "nobody is identified as acting to record a CQC assessment"),
        ({"principal": None}, MissingActor, "nobody is identified"),
    ],
)
def test_bad_assessments_are_refused_and_store_nothing(
    session: Session, trust: tuple[int, int], kw: dict[str, Any], exc: type[Exception], message: str
) -> None:
    record(session, trust, date(2026, 12, 1), I, I, I)
    counts = [
        session.exec(select(func.count()).select_from(t)).one()
        for t in (CqcRating, MsspCase, AuditEvent, OutboxMessage)
    ]
    row = CqcRating(
        organisation_id=trust[0],
        service_id=trust[1],
        assessed_on=kw.get("day", date(2026, 12, 5)),
        overall=kw.get("overall", G),
        safe=G,
        well_led=G,
        recorded_by="",
        recorded_role="",
    )
    principal = kw["principal"] if "principal" in kw else person("office", kw.get("role", "network-office"))
    with pytest.raises(exc, match=message):
        record_cqc_assessment(session, row, principal=principal, clock=FixedClock(kw.get("clock", TODAY)))
    session.rollback()
    assert [
        session.exec(select(func.count()).select_from(t)).one()
        for t in (CqcRating, MsspCase, AuditEvent, OutboxMessage)
    ] == counts


def _scoped(name: str, role: str, scope: str, scope_id: int | None) -> Principal:
    return Principal(person(name, role).user_id, name, (Grant(role, scope, scope_id),), via="test")


def test_recording_and_referring_need_a_staff_role_in_the_trusts_scope(
    session: Session, trust: tuple[int, int]
) -> None:
    """Issue 14: a Network Manager of another network may not record a CQC assessment of this
    Trust nor refer it (nothing stored); one of its own network may, and the rating, the audit
    event and the case's events name the account and the role it acted in."""
    svc = session.get(Service, trust[1])
    assert svc is not None
    other = session.exec(select(Network.id).where(Network.id != svc.network_id)).first()
    counts = [session.exec(select(func.count()).select_from(t)).one() for t in (CqcRating, MsspCase, AuditEvent)]

    def rating() -> CqcRating:
        return CqcRating(
            organisation_id=trust[0], service_id=trust[1], assessed_on=date(2026, 11, 1), overall=I, safe=I, well_led=I
        )

    outsider = _scoped("Cy Mersey", "network-manager", "network", other)
    with pytest.raises(PermissionDenied, match="Cy Mersey holds network-manager but not in the scope"):
        record_cqc_assessment(session, rating(), principal=outsider, clock=FixedClock(TODAY))
    session.rollback()
    with pytest.raises(PermissionDenied, match="not in the scope of refer a Trust"):
        refer_trust(session, trust[0], trust[1], ["hsib"], principal=outsider, clock=FixedClock(TODAY))
    session.rollback()
    executive = _scoped("Ceo Midland", "chief-executive", "organisation", trust[0])
    with pytest.raises(PermissionDenied, match="Ceo Midland may not record a CQC assessment: needs one of"):
        record_cqc_assessment(session, rating(), principal=executive, clock=FixedClock(TODAY))
    session.rollback()
    assert [
        session.exec(select(func.count()).select_from(t)).one() for t in (CqcRating, MsspCase, AuditEvent)
    ] == counts

    manager = _scoped("Wyn Midlands", "network-manager", "network", svc.network_id)
    out = record_cqc_assessment(session, rating(), principal=manager, clock=FixedClock(TODAY))
    session.commit()
    assert (out.rating.recorded_by, out.rating.recorded_role) == ("Wyn Midlands", "network-manager")
    assert out.entered is not None
    (recorded,) = engine.changes(session, "cqc_rating", [out.rating.id])  # type: ignore[list-item]
    (entered,) = engine.history(session, "mssp", out.entered.id)
    for event in (recorded, entered):
        assert (event.user_id, event.actor, event.role) == (manager.user_id, "Wyn Midlands", "network-manager")
