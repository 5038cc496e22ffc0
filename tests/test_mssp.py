"""The Maternity Safety Support Programme (seed 004, DOMAIN.md): every entry criterion; automatic
entry only from a recorded CQC assessment meeting a rating criterion; referral to the MSSCG for
the other routes, whose decision is recorded; exit proposed when Safe AND Well-led each improve,
and decided by the MSSCG; and the machine."""

from __future__ import annotations

import itertools
import json
from datetime import date
from typing import Any

import pytest
from sqlmodel import Session, func, select

from models import AuditEvent, Contact, OutboxMessage, Service
from models.perinatal import CqcRating, MsspCase
from notifications.render import rendered
from states import engine
from states.clock import FixedClock
from states.errors import InvalidInput, InvalidTrigger, MissingActor, PermissionDenied
from states.machines.mssp import (
    CRITERIA,
    RATING_CRITERIA,
    RATINGS,
    REFERRAL_ROUTES,
    MsspState,
    improved_safe_and_well_led,
    mssp_entry_criteria,
    rating,
)
from states.machines.spec import CLOCK_TRIGGERS, get_spec
from states.services.mssp import decide, record_cqc_assessment, refer_trust

O, G, RI, I = "Outstanding", "Good", "Requires Improvement", "Inadequate"  # noqa: E741 (the CQC's initials)
M = MsspState
SPEC = get_spec("mssp")
MRH = "Midland Royal Major Trauma Centre"
TODAY = date(2026, 12, 11)


def r(overall: str = G, safe: str = G, well_led: str = G, **kw: Any) -> dict[str, Any]:
    return {"overall": overall, "safe": safe, "well_led": well_led, **kw}


# (why, previous, current, criteria met)
CRITERIA_TABLE: list[tuple[str, dict[str, Any] | None, dict[str, Any], list[str]]] = [
    ("all good, no history", None, r(), []),
    ("all outstanding", r(O, O, O), r(O, O, O), []),
    ("overall inadequate", None, r(I, RI, RI), ["overall_inadequate"]),
    ("overall inadequate, safe inadequate: still one criterion for overall", None, r(I, I, I), ["overall_inadequate"]),
    ("overall RI alone", None, r(RI, RI, RI), []),
    ("overall RI, safe inadequate", None, r(RI, I, G), ["ri_inadequate_safe_or_well_led"]),
    ("overall RI, well-led inadequate", None, r(RI, G, I), ["ri_inadequate_safe_or_well_led"]),
    ("overall RI, effective inadequate (third domain)", None, r(RI, G, G, effective=I), ["ri_inadequate_third_domain"]),
    ("overall RI, caring inadequate", None, r(RI, G, G, caring=I), ["ri_inadequate_third_domain"]),
    ("overall RI, responsive inadequate", None, r(RI, RI, RI, responsive=I), ["ri_inadequate_third_domain"]),
    (
        "overall RI, safe and responsive inadequate",
        None,
        r(RI, I, RI, responsive=I),
        ["ri_inadequate_safe_or_well_led", "ri_inadequate_third_domain"],
    ),
    ("overall good with an inadequate domain is not a criterion", None, r(G, I, G, effective=I), []),
    ("warning notice on a good rating", None, r(warning_notice=True), ["warning_notice"]),
    ("safe dropped good -> RI", r(G, G, G), r(G, RI, G), ["dropped_safe"]),
    ("safe dropped outstanding -> RI", r(O, O, O), r(G, RI, O), ["dropped_safe"]),
    ("well-led dropped good -> RI", r(G, G, G), r(G, G, RI), ["dropped_well_led"]),
    ("well-led dropped outstanding -> inadequate", r(O, O, O), r(G, O, I), ["dropped_well_led"]),
    ("both dropped", r(G, G, O), r(RI, RI, RI), ["dropped_safe", "dropped_well_led"]),
    ("safe was already RI: no drop", r(RI, RI, G), r(RI, RI, G), []),
    ("safe RI -> inadequate is not a drop from good", r(RI, RI, RI), r(RI, I, RI), ["ri_inadequate_safe_or_well_led"]),
    ("outstanding -> good is not a drop to RI", r(O, O, O), r(G, G, G), []),
    ("effective dropped to RI is not a criterion", r(G, G, G, effective=G), r(G, G, G, effective=RI), []),
    ("no previous rating: no drop", None, r(G, RI, RI), []),
    ("DHSC/NHSE review request", None, r(dhsc_nhse_review_request=True), ["review_request"]),
    ("HSIB concern", None, r(hsib_concern=True), ["hsib_concern"]),
    (
        "everything at once",
        r(G, G, G),
        r(I, I, I, warning_notice=True, dhsc_nhse_review_request=True, hsib_concern=True),
        ["overall_inadequate", "warning_notice", "dropped_safe", "dropped_well_led", "review_request", "hsib_concern"],
    ),
]


@pytest.mark.parametrize(("why", "previous", "current", "expected"), CRITERIA_TABLE, ids=[t[0] for t in CRITERIA_TABLE])
def test_entry_criteria_table(
    why: str, previous: dict[str, Any] | None, current: dict[str, Any], expected: list[str]
) -> None:
    assert mssp_entry_criteria(previous, current) == expected


def test_every_criterion_is_in_the_table() -> None:
    met = {c for *_, expected in CRITERIA_TABLE for c in expected}
    assert met == set(CRITERIA)


def test_entry_criteria_over_every_rating_combination() -> None:
    """Each rating criterion holds exactly when its condition does, over all 4^4 x 5^2 combinations."""
    prev_options = [*RATINGS, None]
    for overall, safe, well_led, third, p_safe, p_wl in itertools.product(
        RATINGS, RATINGS, RATINGS, RATINGS, prev_options, prev_options
    ):
        previous = None if p_safe is None and p_wl is None else {"overall": G, "safe": p_safe, "well_led": p_wl}
        current = {"overall": overall, "safe": safe, "well_led": well_led, "caring": third}
        met = set(mssp_entry_criteria(previous, current))
        assert ("overall_inadequate" in met) == (overall == I)
        assert ("ri_inadequate_safe_or_well_led" in met) == (overall == RI and I in (safe, well_led))
        assert ("ri_inadequate_third_domain" in met) == (overall == RI and third == I)
        assert ("dropped_safe" in met) == (p_safe in (O, G) and safe in (RI, I))
        assert ("dropped_well_led" in met) == (p_wl in (O, G) and well_led in (RI, I))
        assert not met & {"warning_notice", "review_request", "hsib_concern"}
        for flag, name in (
            ("warning_notice", "warning_notice"),
            ("dhsc_nhse_review_request", "review_request"),
            ("hsib_concern", "hsib_concern"),
        ):
            assert name in mssp_entry_criteria(previous, {**current, flag: True})


def test_criteria_read_stored_ratings_too() -> None:
    prev = CqcRating(
        organisation_id=1,
        assessed_on=date(2025, 1, 1),
        overall=G,
        safe=G,
        well_led=G,
        recorded_by="a",
        recorded_role="operator",
    )
    cur = CqcRating(
        organisation_id=1,
        assessed_on=date(2026, 1, 1),
        overall=RI,
        safe=RI,
        well_led=G,
        recorded_by="a",
        recorded_role="operator",
    )
    assert mssp_entry_criteria(prev, cur) == ["dropped_safe"]


# (baseline safe, well-led) -> (current safe, well-led) -> exits?
EXIT_TABLE = [
    ((I, I), (RI, RI), True),
    ((RI, RI), (G, G), True),
    ((I, RI), (G, O), True),  # more than one step is fine
    ((RI, RI), (G, RI), False),  # only Safe improved
    ((RI, RI), (RI, G), False),  # only Well-led improved
    ((RI, RI), (RI, RI), False),
    ((I, I), (O, I), False),
    ((RI, RI), (O, I), False),  # one up, one down
    ((G, G), (O, O), True),
    ((O, O), (O, O), False),  # cannot improve on Outstanding
]


@pytest.mark.parametrize(("baseline", "current", "exits"), EXIT_TABLE, ids=[f"{b}->{c}" for b, c, _ in EXIT_TABLE])
def test_exit_needs_safe_and_well_led_each_one_step_better(
    baseline: tuple[str, str], current: tuple[str, str], exits: bool
) -> None:
    assert (
        improved_safe_and_well_led(
            {"safe": baseline[0], "well_led": baseline[1]}, {"safe": current[0], "well_led": current[1]}
        )
        is exits
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("good", G),
        ("RI", RI),
        ("requires-improvement", RI),
        ("Requires_Improvement", RI),
        ("  INADEQUATE ", I),
        ("Outstanding", O),
    ],
)
def test_ratings_are_spelled_as_the_cqc_spells_them(text: str, expected: str) -> None:
    assert rating(text) == expected


def test_an_unknown_rating_is_refused() -> None:
    with pytest.raises(InvalidInput, match="'Excellent'"):
        rating("Excellent")


# ---------------------------------------------------------------- through the engine


@pytest.fixture
def trust(session: Session, services: dict[str, int]) -> tuple[int, int]:
    """Midland Royal's Trust with a maternity service and the MSSP contacts; (organisation id, service id)."""
    trauma = session.get(Service, services[MRH])
    assert trauma is not None
    svc = Service(
        name="Midland Royal Maternity",
        kind="Maternity",
        organisation_id=trauma.organisation_id,
        network_id=trauma.network_id,
    )
    session.add(svc)
    session.flush()
    session.add(
        Contact(
            role="service-lead",
            name="Ms Mae Midwife",
            email="mae@mrh.nhs.example",
            service_id=svc.id,
            organisation_id=svc.organisation_id,
        )
    )
    session.add(Contact(role="msscg", name="MSSCG secretariat", email="msscg@england.nhs.example"))
    for role in ("lms-lead", "regional-chief-midwife"):
        session.add(Contact(role=role, name=role, email=f"{role}@region.nhs.example", network_id=svc.network_id))
    session.commit()
    assert svc.id is not None
    return svc.organisation_id, svc.id


def _record(
    session: Session,
    trust: tuple[int, int],
    day: date,
    overall: str,
    safe: str,
    well_led: str,
    *,
    role: str = "network-office",
    actor: str = "office",
    **flags: Any,
) -> Any:
    row = CqcRating(
        organisation_id=trust[0],
        service_id=trust[1],
        assessed_on=day,
        overall=overall,
        safe=safe,
        well_led=well_led,
        recorded_by=actor,
        recorded_role=role,
        **flags,
    )
    out = record_cqc_assessment(session, row, clock=FixedClock(TODAY if day <= TODAY else day))
    session.commit()
    return out


def _letters(session: Session, case_id: int) -> list[str]:
    return list(
        session.exec(
            select(OutboxMessage.template).where(
                OutboxMessage.kind == "mssp", OutboxMessage.item_id == case_id, OutboxMessage.category == "letter"
            )
        ).all()
    )


def test_a_recorded_inadequate_rating_enters_mssp_through_the_engine(session: Session, trust: tuple[int, int]) -> None:
    first = _record(session, trust, date(2025, 3, 1), G, G, G)
    assert first.criteria == [] and first.entered is None
    out = _record(session, trust, date(2026, 11, 20), I, I, RI)
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
    assert _letters(session, case.id) == ["mssp_entry"]
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
        session, case_id, decision, decided_by=by, decided_on=day, actor=actor, role=role, clock=FixedClock(TODAY)
    )
    session.commit()
    return out


def test_exit_is_proposed_when_safe_and_well_led_each_improve_and_decided_by_the_msscg(
    session: Session, trust: tuple[int, int]
) -> None:
    """Changed for DOMAIN.md (issue 12 item 15): the exit criterion no longer exits the Trust; it
    proposes exit to the MSSCG, whose decision (exit) is recorded."""
    case = _record(session, trust, date(2026, 1, 10), RI, I, RI).entered
    assert case is not None
    only_safe = _record(session, trust, date(2026, 5, 1), RI, RI, RI)
    assert only_safe.continuing == [case] and only_safe.exit_proposed == [] and only_safe.entered is None
    only_well_led = _record(session, trust, date(2026, 8, 1), RI, I, G)
    assert only_well_led.continuing == [case] and case.state == M.IN_PROGRAMME
    assert only_well_led.entered is None  # already in the programme: no second case although RI + Safe Inadequate
    both = _record(session, trust, date(2026, 11, 1), G, RI, G)
    assert both.exit_proposed == [case] and case.state == M.EXIT_PROPOSED and case.exited_on is None
    assert (case.exit_proposed_on, case.exit_rating_id) == (TODAY, both.rating.id)
    assert _letters(session, case.id) == ["mssp_entry", "mssp_exit_proposed"]
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
            actor="office",
            role="network-office",
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
    assert _letters(session, case.id) == ["mssp_entry", "mssp_exit_proposed", "mssp_exit"]
    exit_letter = session.exec(select(OutboxMessage).where(OutboxMessage.template == "mssp_exit")).one()
    body = " ".join(rendered(exit_letter).body_text.split())
    assert (
        "Safe: Inadequate -> Requires Improvement" in body and "Decided by: MSSCG co-chairs, meeting of 10 Dec" in body
    )
    assert session.exec(select(func.count()).select_from(MsspCase)).one() == 1


def test_the_msscg_may_decide_a_trust_remains_and_a_later_assessment_proposes_exit_again(
    session: Session, trust: tuple[int, int]
) -> None:
    case = _record(session, trust, date(2026, 1, 10), I, I, I).entered
    assert case is not None
    assert _record(session, trust, date(2026, 6, 1), RI, RI, RI).exit_proposed == [case]
    later = _record(session, trust, date(2026, 7, 1), RI, RI, RI)  # while the proposal waits: recorded, nothing decided
    assert later.continuing == [case] and session.get(MsspCase, case.id).state == M.EXIT_PROPOSED  # type: ignore[union-attr]
    out = _decide(session, case.id, "Remain", day="2026-12-11")
    assert out.row.state == M.IN_PROGRAMME and out.row.exit_proposed_on is None and out.row.exited_on is None
    assert out.row.decisions[-1]["decision"] == "remain"
    assert _letters(session, case.id)[-1] == "mssp_exit_declined"
    assert _record(session, trust, date(2026, 11, 1), G, G, G).exit_proposed == [case]


def test_hsib_identification_refers_the_trust_and_the_msscg_decides_entry(
    session: Session, trust: tuple[int, int]
) -> None:
    """Changed for DOMAIN.md (issue 12 item 15): an HSIB identification with no rating criterion
    used to enter the Trust automatically; it now refers it to the MSSCG."""
    _record(session, trust, date(2025, 3, 1), G, G, G)
    out = _record(session, trust, date(2026, 3, 1), G, G, G, hsib_concern=True)
    assert out.entered is None and out.referred is not None
    case = out.referred
    assert (case.state, case.entry_criteria, case.referred_on, case.entered_on) == (
        M.REFERRED,
        ["hsib_concern"],
        TODAY,
        None,
    )
    assert _letters(session, case.id) == ["mssp_referral"]
    letter = session.exec(select(OutboxMessage).where(OutboxMessage.template == "mssp_referral")).one()
    assert {p["role"] for p in letter.to} == {"msscg"}
    assert "identified to the CQC with concerns by HSIB" in " ".join(rendered(letter).body_text.split())
    # a second HSIB flag while the decision is awaited: no second referral
    again = _record(session, trust, date(2026, 4, 1), G, G, G, hsib_concern=True)
    assert again.referred is None and again.awaiting == [case]
    with pytest.raises(PermissionDenied, match="may not fire 'decide_entry'"):
        decide(
            session,
            case.id,
            "enter",
            decided_by="MSSCG",
            decided_on="2026-12-01",
            actor="sweeper",
            role="system",
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
            actor="o",
            role="network-office",
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
            actor="o",
            role="network-office",
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
    out = _record(session, trust, date(2026, 3, 1), G, G, G, **{flag: True})
    assert out.entered is None and out.referred is not None and out.referred.state == M.REFERRED


def test_rating_criteria_and_referral_routes_split_the_criteria() -> None:
    assert set(RATING_CRITERIA) | set(REFERRAL_ROUTES) == set(CRITERIA) and not set(RATING_CRITERIA) & set(
        REFERRAL_ROUTES
    )


def test_the_msscg_may_decide_a_referred_trust_does_not_enter(session: Session, trust: tuple[int, int]) -> None:
    case = _record(session, trust, date(2026, 3, 1), G, G, G, warning_notice=True).referred
    assert case is not None
    out = _decide(session, case.id, "not-enter", day="2026-12-11")
    assert out.row.state == M.NOT_ENTERED and out.row.entered_on is None
    assert _letters(session, case.id) == ["mssp_referral", "mssp_not_entered"]
    with pytest.raises(InvalidInput, match="'not_entered'"):
        decide(
            session,
            case.id,
            "enter",
            decided_by="MSSCG",
            decided_on="2026-12-01",
            actor="o",
            role="network-office",
            clock=FixedClock(TODAY),
        )


def test_a_referred_trust_whose_next_assessment_meets_a_rating_criterion_enters_automatically(
    session: Session, trust: tuple[int, int]
) -> None:
    _record(session, trust, date(2025, 3, 1), G, G, G)
    case = _record(session, trust, date(2026, 3, 1), G, G, G, dhsc_nhse_review_request=True).referred
    assert case is not None
    out = _record(session, trust, date(2026, 9, 1), I, RI, RI)
    assert out.entered is not None and out.entered.id == case.id and out.entered.state == M.IN_PROGRAMME
    assert out.entered.entry_criteria == ["review_request", "overall_inadequate", "dropped_safe", "dropped_well_led"]
    assert [e.trigger for e in engine.history(session, "mssp", case.id)] == ["refer", "enter"]


def test_refer_without_an_assessment(session: Session, trust: tuple[int, int]) -> None:
    case = refer_trust(
        session,
        trust[0],
        trust[1],
        ["hsib"],
        actor="office",
        role="network-office",
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
            actor="office",
            role="network-office",
            clock=FixedClock(TODAY),
        )
    with pytest.raises(InvalidInput, match="route 'gossip'"):
        refer_trust(
            session, trust[0], trust[1], ["gossip"], actor="office", role="network-office", clock=FixedClock(TODAY)
        )
    session.rollback()
    out = _decide(session, case.id, "enter", day="2026-12-11")
    assert out.row.state == M.IN_PROGRAMME and out.row.baseline == {}
    first = _record(session, trust, date(2026, 12, 11), RI, RI, RI)  # the first rating becomes the baseline
    assert first.continuing == [out.row] and out.row.baseline["safe"] == RI


@pytest.mark.parametrize(
    ("kw", "exc", "message"),
    [
        ({"day": date(2026, 12, 1)}, InvalidInput, "record assessments in date order"),
        ({"day": date(2026, 12, 12), "clock": TODAY}, InvalidInput, "after today"),
        ({"overall": "Excellent"}, InvalidInput, "Overall 'Excellent'"),
        ({"role": "auditor"}, PermissionDenied, "may not record a CQC assessment"),
        ({"actor": " "}, MissingActor, "no actor"),
    ],
)
def test_bad_assessments_are_refused_and_store_nothing(
    session: Session, trust: tuple[int, int], kw: dict[str, Any], exc: type[Exception], message: str
) -> None:
    _record(session, trust, date(2026, 12, 1), I, I, I)
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
        recorded_by=kw.get("actor", "office"),
        recorded_role=kw.get("role", "network-office"),
    )
    with pytest.raises(exc, match=message):
        record_cqc_assessment(session, row, clock=FixedClock(kw.get("clock", TODAY)))
    session.rollback()
    assert [
        session.exec(select(func.count()).select_from(t)).one()
        for t in (CqcRating, MsspCase, AuditEvent, OutboxMessage)
    ] == counts


# ---------------------------------------------------------------- the machine, table-driven


def _case(session: Session, trust: tuple[int, int]) -> MsspCase:
    case = _record(session, trust, date(2026, 6, 1), I, I, I).entered
    assert case is not None
    return case  # type: ignore[no-any-return]


def _rating_id(
    session: Session, trust: tuple[int, int], safe: str, well_led: str, day: date = date(2026, 12, 1)
) -> int:
    row = CqcRating(
        organisation_id=trust[0],
        service_id=trust[1],
        assessed_on=day,
        overall=RI,
        safe=safe,
        well_led=well_led,
        recorded_by="o",
        recorded_role="operator",
    )
    session.add(row)
    session.commit()
    assert row.id is not None
    return row.id


def _referred(session: Session, trust: tuple[int, int]) -> MsspCase:
    case = _record(session, trust, date(2026, 6, 1), G, G, G, hsib_concern=True).referred
    assert case is not None
    return case  # type: ignore[no-any-return]


DECIDED = {"decided_by": "MSSCG", "decided_on": "2026-12-11"}
# (source, trigger, role, setup, destination, letters)
MACHINE_TABLE: list[tuple[str, str, str, dict[str, Any], str, set[str]]] = [
    (
        M.IN_PROGRAMME,
        "record_assessment",
        "network-office",
        {"rating": (RI, RI)},
        M.EXIT_PROPOSED,
        {"mssp_exit_proposed"},
    ),
    (M.IN_PROGRAMME, "record_assessment", "system", {"rating": (RI, I)}, M.IN_PROGRAMME, set()),
    (M.EXIT_PROPOSED, "record_assessment", "system", {"rating": (RI, I)}, M.EXIT_PROPOSED, set()),
    (
        M.IN_PROGRAMME,
        "withdraw",
        "network-manager",
        {"note": "entered in error: ratings mis-keyed"},
        M.WITHDRAWN,
        set(),
    ),
    (M.REFERRED, "withdraw", "regional-lead", {"note": "referred in error"}, M.WITHDRAWN, set()),
    (M.EXIT_PROPOSED, "withdraw", "network-manager", {"note": "duplicate case"}, M.WITHDRAWN, set()),
    (
        M.REFERRED,
        "decide_entry",
        "network-office",
        {"params": {"decision": "enter", **DECIDED}},
        M.IN_PROGRAMME,
        {"mssp_entry"},
    ),
    (
        M.REFERRED,
        "decide_entry",
        "operator",
        {"params": {"decision": "not_enter", **DECIDED}},
        M.NOT_ENTERED,
        {"mssp_not_entered"},
    ),
    (
        M.EXIT_PROPOSED,
        "decide_exit",
        "network-manager",
        {"params": {"decision": "exit", **DECIDED}},
        M.EXITED,
        {"mssp_exit"},
    ),
    (
        M.EXIT_PROPOSED,
        "decide_exit",
        "regional-lead",
        {"params": {"decision": "remain", **DECIDED}},
        M.IN_PROGRAMME,
        {"mssp_exit_declined"},
    ),
    (M.REFERRED, "enter", "system", {"rating": (I, I)}, M.IN_PROGRAMME, {"mssp_entry"}),
]


@pytest.mark.parametrize(
    ("source", "trigger", "role", "setup", "dest", "letters"),
    MACHINE_TABLE,
    ids=[f"{t[0]}-{t[1]}-{t[4]}" for t in MACHINE_TABLE],
)
def test_allowed_transitions(
    session: Session,
    trust: tuple[int, int],
    source: str,
    trigger: str,
    role: str,
    setup: dict[str, Any],
    dest: str,
    letters: set[str],
) -> None:
    case = _referred(session, trust) if source == M.REFERRED else _case(session, trust)
    if source == M.EXIT_PROPOSED:
        engine.fire(
            session,
            "mssp",
            case.id,
            "record_assessment",
            actor="t",
            role="system",
            clock=FixedClock(TODAY),
            params={"rating_id": _rating_id(session, trust, G, G, date(2026, 11, 1))},
        )
        session.commit()
    assert case.state == source
    params = dict(setup.get("params") or {})
    if "rating" in setup:
        params = {
            "rating_id": _rating_id(session, trust, *setup["rating"]),
            **({"criteria": ["overall_inadequate"]} if trigger == "enter" else {}),
        }
    before = set(_letters(session, case.id))
    out = engine.fire(
        session,
        "mssp",
        case.id,
        trigger,
        actor="tester",
        role=role,
        clock=FixedClock(TODAY),
        note=setup.get("note"),
        params=params or None,
    )
    session.commit()
    assert (out.row.state, out.event.from_state, out.event.to_state) == (dest, source, dest)
    assert set(_letters(session, case.id)) - before == letters


ALLOWED = {(M.NEW.value, "enter"), (M.NEW.value, "refer"), (M.REFERRED.value, "enter")}
ALLOWED |= {(str(src), trig) for src, trig, *_ in MACHINE_TABLE}
ALLOWED |= {(s.value, t) for s in (M.REFERRED, M.IN_PROGRAMME, M.EXIT_PROPOSED) for t in CLOCK_TRIGGERS}
REFUSED = [(s.value, t) for s in M for t in SPEC.triggers() if (s.value, t) not in ALLOWED]


def test_table_covers_machine() -> None:
    assert {(s.value, t) for s in M for t in SPEC.allowed_from(s.value)} == ALLOWED


@pytest.mark.parametrize(("state", "trigger"), REFUSED, ids=[f"{s}-{t}" for s, t in REFUSED])
def test_refused_pairs_change_nothing(session: Session, trust: tuple[int, int], state: str, trigger: str) -> None:
    case = _case(session, trust)
    case.state = state
    session.add(case)
    session.commit()
    version, events = case.version, session.exec(select(func.count()).select_from(AuditEvent)).one()
    with pytest.raises(InvalidTrigger, match=f"'{state}'"):
        engine.fire(
            session, "mssp", case.id, trigger, actor="tester", role="network-manager", clock=FixedClock(TODAY), note="n"
        )
    session.rollback()
    fresh = session.get(MsspCase, case.id)
    assert fresh is not None and (fresh.state, fresh.version) == (state, version)
    assert session.exec(select(func.count()).select_from(AuditEvent)).one() == events


def test_cli_cqc_record_says_what_happened(
    db_url: str, session: Session, trust: tuple[int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    def run(*args: str) -> tuple[int, Any]:
        with pytest.raises(SystemExit) as exit_:
            main(["--as-of", "2026-12-11", *args])
        return exit_.value.code, capsys.readouterr()  # type: ignore[return-value]

    org = "Midland Royal Hospitals NHS Trust"
    base = ["cqc", "record", "--organisation", org, "--actor", "Nia"]
    code, out = run(*base, "--date", "2025-06-01", "--overall", "good", "--safe", "good", "--well-led", "good")
    assert code == 0 and "no MSSP entry criterion met" in out.out
    code, out = run(
        "--json",
        *base,
        "--date",
        "2026-11-01",
        "--overall",
        "RI",
        "--safe",
        "RI",
        "--well-led",
        "good",
        "--warning-notice",
    )
    result = json.loads(out.out)
    assert code == 0 and result["criteria"] == ["warning_notice", "dropped_safe"] and result["mssp_entered"] == 1
    code, out = run(*base, "--date", "2026-12-01", "--overall", "good", "--safe", "good", "--well-led", "outstanding")
    # changed for DOMAIN.md (issue 12 item 15): the exit criterion proposes exit; the MSSCG decides
    assert code == 0 and "MSSP case 1: exit criterion met" in " ".join(out.out.split())
    assert "exit proposed to the MSSCG" in " ".join(out.out.split())
    code, out = run(*base, "--date", "2026-12-02", "--overall", "superb", "--safe", "good", "--well-led", "good")
    assert code == 2 and "error: Overall 'superb'" in out.err
    code, out = run("mssp", "decide", "1", "--decision", "exit", "--decided-by", "MSSCG co-chairs", "--actor", "Nia")
    assert code == 2 and "--decided-on" in out.err
    code, out = run(
        "mssp",
        "decide",
        "1",
        "--decision",
        "exit",
        "--decided-by",
        "MSSCG co-chairs",
        "--decided-on",
        "2026-12-10",
        "--actor",
        "Nia",
    )
    assert code == 2 and "before the question was put" in out.err
    code, out = run(
        "mssp",
        "decide",
        "1",
        "--decision",
        "exit",
        "--decided-by",
        "MSSCG co-chairs",
        "--decided-on",
        "2026-12-11",
        "--actor",
        "Nia",
    )
    assert code == 0 and "exit_proposed -> exited" in out.out
    code, out = run(
        "--json",
        "mssp",
        "refer",
        "--organisation",
        org,
        "--route",
        "hsib",
        "--actor",
        "Nia",
        "--note",
        "HSIB letter of 9 Dec",
    )
    assert code == 0 and json.loads(out.out)["state"] == "referred"
    code, out = run(
        "mssp",
        "decide",
        "2",
        "--decision",
        "not-enter",
        "--decided-by",
        "MSSCG",
        "--decided-on",
        "2026-12-11",
        "--actor",
        "Nia",
    )
    assert code == 0 and "referred -> not_entered" in out.out
