"""QNT surveillance decisions (seed 002 s1.1.1), table-driven: assessment outcomes, every
allowed and refused (state, trigger), combinable options, two-party agreement by two
different people, and option 3 proposing a linked peer review visit."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from models import AuditEvent, Deadline, OutboxMessage, Visit
from models.surveillance import Surveillance
from notifications.render import rendered
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock
from states.errors import GuardRefused, InvalidInput, InvalidTrigger, PermissionDenied
from states.machines.spec import CLOCK_TRIGGERS, get_spec
from states.machines.surveillance import SurveillanceState
from states.principal import Principal
from tests.factories import person

Q = SurveillanceState
SPEC = get_spec("surveillance")
NM, RL, OFFICE = "network-manager", "regional-lead", "network-office"
MRH = "Midland Royal Major Trauma Centre"
DAY = date(2026, 12, 11)
LATER = FixedClock(date(2026, 12, 14))


def _assess(
    session: Session,
    services: dict[str, int],
    agreed: int,
    met: int,
    score: float | None = None,
    threshold: float | None = None,
    service: str = MRH,
    year: int = 2026,
) -> Surveillance:
    row = Surveillance(
        service_id=services[service],
        programme_year=year,
        indicators_agreed=agreed,
        indicators_met=met,
        good_practice_score=score,
        good_practice_threshold=threshold,
        state="new",
    )
    out = engine.create(
        session, "surveillance", row, "assess", principal=person("Ann Office", OFFICE), clock=FixedClock(DAY)
    )
    session.commit()
    return out.row  # type: ignore[return-value]


def _fire(
    session: Session,
    item: Surveillance,
    trigger: str,
    actor: str = "Nia Manager",
    role: str = NM,
    clock: FixedClock = LATER,
    principal: Principal | None = None,
    **kw: Any,
) -> Surveillance:
    who = principal if principal is not None else person(actor, role)
    out = engine.fire(session, "surveillance", item.id, trigger, principal=who, clock=clock, **kw)  # type: ignore[arg-type]
    session.commit()
    return out.row  # type: ignore[return-value]


def _letters(session: Session, item_id: int | None) -> list[str]:
    return list(
        session.exec(
            select(OutboxMessage.template)
            .where(OutboxMessage.kind == "surveillance", OutboxMessage.item_id == item_id)
            .order_by(OutboxMessage.id)
        ).all()
    )  # type: ignore[arg-type]


def _counts(session: Session) -> tuple[int, int, int, int]:
    return tuple(
        session.exec(select(func.count()).select_from(t)).one() for t in (AuditEvent, OutboxMessage, Deadline, Visit)
    )  # type: ignore[return-value]


# ---------------------------------------------------------------- assessment


@pytest.mark.parametrize(
    ("agreed", "met", "score", "threshold", "state", "letters"),
    [
        (20, 20, None, None, Q.NOT_REQUIRED, ["surveillance_decision"]),  # 100%, no threshold applies
        (20, 20, 90.0, 80.0, Q.NOT_REQUIRED, ["surveillance_decision"]),  # 100% and threshold met
        (20, 20, 80.0, 80.0, Q.NOT_REQUIRED, ["surveillance_decision"]),  # meeting the threshold exactly is meeting it
        (20, 20, 79.9, 80.0, Q.DECISION_REQUIRED, []),  # 100% but fails the good-practice threshold
        (20, 19, None, None, Q.DECISION_REQUIRED, []),  # 95%
        (20, 19, 95.0, 80.0, Q.DECISION_REQUIRED, []),  # 95% even with good practice met
        (1, 0, None, None, Q.DECISION_REQUIRED, []),
    ],
)
def test_assessment_outcome(
    session: Session,
    services: dict[str, int],
    agreed: int,
    met: int,
    score: float | None,
    threshold: float | None,
    state: str,
    letters: list[str],
) -> None:
    row = _assess(session, services, agreed, met, score, threshold)
    assert row.state == state
    assert row.version == 2
    assert _letters(session, row.id) == letters
    assert (state in SPEC.terminal) == (state == Q.NOT_REQUIRED)
    event = session.exec(
        select(AuditEvent).where(AuditEvent.kind == "surveillance", AuditEvent.item_id == row.id)
    ).one()
    assert (event.trigger, event.from_state, event.to_state, event.actor) == ("assess", "new", state, "Ann Office")


def test_not_required_letter_goes_to_the_provider_copied_to_the_commissioner(
    session: Session, services: dict[str, int]
) -> None:
    row = _assess(session, services, 12, 12, 90.0, 85.0)
    msg = session.exec(
        select(OutboxMessage).where(OutboxMessage.item_id == row.id, OutboxMessage.kind == "surveillance")
    ).one()
    assert {p["role"] for p in msg.to} == {"chief-executive", "service-lead"}
    assert {p["role"] for p in msg.cc} == {"commissioning-lead"}
    assert "no additional surveillance required" in rendered(msg).subject and "2026-27" in rendered(msg).subject
    assert "12 of 12 met (100.0%)" in rendered(msg).body_text


@pytest.mark.parametrize(
    ("agreed", "met", "score", "threshold", "match"),
    [
        (20, 21, None, None, "indicators met must be 0-20"),
        (20, -1, None, None, "indicators met must be 0-20"),
        (0, 0, None, None, "at least 1"),
        (20, 20, 90.0, None, "both the good-practice score"),
        (20, 20, None, 80.0, "both the good-practice score"),
    ],
)
def test_bad_figures_are_refused(
    session: Session,
    services: dict[str, int],
    agreed: int,
    met: int,
    score: float | None,
    threshold: float | None,
    match: str,
) -> None:
    counts = _counts(session)
    with pytest.raises(InvalidInput, match=match):
        _assess(session, services, agreed, met, score, threshold)
    session.rollback()
    assert _counts(session) == counts
    assert session.exec(select(Surveillance)).all() == []


def test_one_decision_per_service_and_year(session: Session, services: dict[str, int]) -> None:
    first = _assess(session, services, 10, 9)
    with pytest.raises(
        GuardRefused, match=f"already has a surveillance decision for 2026-27 \\(surveillance {first.id}\\)"
    ):
        _assess(session, services, 10, 10)
    session.rollback()
    assert _assess(session, services, 10, 10, year=2027).state == Q.NOT_REQUIRED  # next year is its own decision


# ---------------------------------------------------------------- the machine, table-driven


def _put_in(session: Session, row: Surveillance, state: str, **fields: Any) -> Surveillance:
    """Test setup shortcut: place an assessed item in a given state with given fields."""
    row.state = str(state)
    for k, v in fields.items():
        setattr(row, k, v)
    session.add(row)
    session.commit()
    return row


BOTH = {
    "options": ["routine"],
    "provider_agreed_by": "Pat Provider",
    "provider_agreed_on": date(2026, 12, 11),
    "commissioner_agreed_by": "Cy Commissioner",
    "commissioner_agreed_on": date(2026, 12, 11),
}
PROPOSED = {"options": ["routine"]}

# (source, trigger, role, row fields, kwargs for fire, destination, letters queued)
TABLE: list[tuple[str, str, str, dict[str, Any], dict[str, Any], str, list[str]]] = [
    (
        Q.DECISION_REQUIRED,
        "propose_options",
        NM,
        {},
        {"params": {"options": "routine"}},
        Q.OPTIONS_PROPOSED,
        ["surveillance_decision"],
    ),
    (
        Q.DECISION_REQUIRED,
        "propose_options",
        RL,
        {},
        {"params": {"options": ["routine", "peer_review"]}},
        Q.OPTIONS_PROPOSED,
        ["surveillance_decision"],
    ),
    (
        Q.OPTIONS_PROPOSED,
        "propose_options",
        NM,
        PROPOSED,
        {"params": {"options": "3"}},
        Q.OPTIONS_PROPOSED,
        ["surveillance_decision"],
    ),
    (Q.OPTIONS_PROPOSED, "record_provider_agreement", OFFICE, PROPOSED, {}, Q.OPTIONS_PROPOSED, []),
    (Q.OPTIONS_PROPOSED, "record_commissioner_agreement", "operator", PROPOSED, {}, Q.OPTIONS_PROPOSED, []),
    (Q.OPTIONS_PROPOSED, "agree", OFFICE, BOTH, {}, Q.AGREED, ["surveillance_agreed"]),
    (Q.AGREED, "start_surveillance", OFFICE, BOTH, {}, Q.IN_SURVEILLANCE, []),
    (Q.IN_SURVEILLANCE, "close", RL, BOTH, {"note": "routine surveillance complete"}, Q.CLOSED, []),
]


@pytest.mark.parametrize(
    ("source", "trigger", "role", "fields", "kw", "dest", "letters"),
    TABLE,
    ids=[f"{t[0]}-{t[1]}-{t[2]}" for t in TABLE],
)
def test_allowed_transitions(
    session: Session,
    services: dict[str, int],
    source: str,
    trigger: str,
    role: str,
    fields: dict[str, Any],
    kw: dict[str, Any],
    dest: str,
    letters: list[str],
) -> None:
    row = _put_in(session, _assess(session, services, 20, 19), source, **fields)
    version, before = row.version, _letters(session, row.id)
    out = engine.fire(
        session, "surveillance", row.id, trigger, principal=person("Tess Tester", role), clock=LATER, **kw
    )  # type: ignore[arg-type]
    session.commit()
    assert out.row.state == dest
    assert out.row.version == version + 1
    assert (out.event.trigger, out.event.from_state, out.event.to_state, out.event.actor) == (
        trigger,
        source,
        dest,
        "Tess Tester",
    )
    assert _letters(session, row.id)[len(before) :] == letters


ALLOWED = {(str(src), trig) for src, trig, *_ in TABLE} | {(Q.NEW.value, "assess")}
ALLOWED |= {(s.value, t) for s in Q if s.value not in SPEC.terminal and s != Q.NEW for t in CLOCK_TRIGGERS}
REFUSED = [(s.value, t) for s in Q for t in SPEC.triggers() if (s.value, t) not in ALLOWED]


def test_table_covers_machine() -> None:
    """Every pair the machine allows is in the table above, and vice versa."""
    assert {(s.value, t) for s in Q for t in SPEC.allowed_from(s.value)} == ALLOWED
    assert SPEC.terminal == {"not_required", "closed"}


@pytest.mark.parametrize(("state", "trigger"), REFUSED, ids=[f"{s}-{t}" for s, t in REFUSED])
def test_refused_pairs_change_nothing(session: Session, services: dict[str, int], state: str, trigger: str) -> None:
    row = _put_in(session, _assess(session, services, 20, 19), state, **BOTH)
    version, counts = row.version, _counts(session)
    with pytest.raises(InvalidTrigger, match=f"'{state}'"):
        engine.fire(
            session,
            "surveillance",
            row.id,
            trigger,
            principal=person("Tess Tester", NM),
            clock=LATER,
            note="n",  # type: ignore[arg-type]
            params={"options": "routine"},
        )
    session.rollback()
    fresh = session.get(Surveillance, row.id)
    assert fresh is not None and (fresh.state, fresh.version) == (state, version)
    assert _counts(session) == counts


def test_roles_are_checked(session: Session, services: dict[str, int]) -> None:
    row = _assess(session, services, 20, 19)
    with pytest.raises(PermissionDenied, match="needs one of network-manager, regional-lead"):
        _fire(session, row, "propose_options", role=OFFICE, params={"options": "routine"})
    session.rollback()
    row = _put_in(session, row, Q.IN_SURVEILLANCE, **BOTH)
    with pytest.raises(InvalidInput, match="needs a reason"):
        _fire(session, row, "close", role=NM)


# ---------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("given", "options"),
    [
        ("routine", ["routine"]),
        ("routine,enhanced", ["routine", "enhanced"]),  # combinable
        ("3, 1", ["routine", "peer_review"]),  # by number, returned in option order
        (["peer_review", "enhanced", "routine", "2"], ["routine", "enhanced", "peer_review"]),
        ("option 2,peer-review", ["enhanced", "peer_review"]),
    ],
)
def test_options_are_combinable(session: Session, services: dict[str, int], given: Any, options: list[str]) -> None:
    row = _assess(session, services, 20, 19)
    params = {"options": given}
    if "enhanced" in options:
        params |= {
            "provider_action": "monthly rota audit to the board",
            "commissioner_action": "quarterly contract review",
        }
    row = _fire(session, row, "propose_options", params=params)
    assert row.state == Q.OPTIONS_PROPOSED and row.options == options
    if "enhanced" in options:
        assert row.enhanced_actions == {
            "provider": "monthly rota audit to the board",
            "commissioner": "quarterly contract review",
        }
        body = rendered(
            session.exec(
                select(OutboxMessage).where(OutboxMessage.item_id == row.id, OutboxMessage.kind == "surveillance")
            ).one()
        ).body_text
        assert "Provider action: monthly rota audit to the board" in body and "Option 2: enhanced surveillance" in body
    else:
        assert row.enhanced_actions == {}


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"options": "enhanced"}, "needs provider_action"),
        ({"options": "routine", "provider_action": "audit"}, "belong to option 2"),
        ({"options": "routine,weekly"}, "surveillance option 'weekly'"),
        ({"options": "4"}, "surveillance option '4'"),
        ({"options": " , "}, "needs options="),
        ({}, "needs options="),
    ],
)
def test_bad_options_are_refused(
    session: Session, services: dict[str, int], params: dict[str, Any], match: str
) -> None:
    row = _assess(session, services, 20, 19)
    counts = _counts(session)
    with pytest.raises(InvalidInput, match=match):
        _fire(session, row, "propose_options", params=params)
    session.rollback()
    assert _counts(session) == counts
    fresh = session.get(Surveillance, row.id)
    assert fresh is not None and fresh.state == Q.DECISION_REQUIRED and fresh.options == []


def test_enhanced_with_commissioner_action_only(session: Session, services: dict[str, int]) -> None:
    row = _fire(
        session,
        _assess(session, services, 20, 19),
        "propose_options",
        params={"options": "enhanced", "commissioner_action": "commissioner quality visit"},
    )
    assert row.enhanced_actions == {"commissioner": "commissioner quality visit"}


# ---------------------------------------------------------------- agreement


def _proposed(session: Session, services: dict[str, int], options: str = "routine") -> Surveillance:
    return _fire(session, _assess(session, services, 20, 19), "propose_options", params={"options": options})


def test_agreement_needs_both_parties(session: Session, services: dict[str, int]) -> None:
    row = _proposed(session, services)
    with pytest.raises(GuardRefused, match="has_provider_agreement, has_commissioner_agreement"):
        _fire(session, row, "agree")
    session.rollback()
    row = _fire(session, row, "record_provider_agreement", principal=person("Pat Provider", OFFICE))
    assert (row.provider_agreed_by, row.provider_agreed_on) == ("Pat Provider", LATER.now().date())
    with pytest.raises(GuardRefused, match="has_commissioner_agreement") as refused:
        _fire(session, row, "agree")
    assert "has_provider_agreement" not in str(refused.value)
    session.rollback()
    row = _fire(
        session,
        row,
        "record_commissioner_agreement",
        principal=person("Cy Commissioner", OFFICE),
        clock=FixedClock(date(2026, 12, 15)),
    )
    assert (row.commissioner_agreed_by, row.commissioner_agreed_on) == ("Cy Commissioner", date(2026, 12, 15))
    assert row.state == Q.OPTIONS_PROPOSED  # recording is not agreeing
    row = _fire(session, row, "agree", clock=FixedClock(date(2026, 12, 15)))
    assert row.state == Q.AGREED and row.visit_id is None
    assert _letters(session, row.id) == ["surveillance_decision", "surveillance_agreed"]
    assert session.exec(select(Visit)).all() == []  # no option 3, no visit


@pytest.mark.parametrize("second", ["Pat Provider", "  pat   PROVIDER ", "Patricia Provider-Jones"])
def test_one_person_cannot_record_both_agreements(session: Session, services: dict[str, int], second: str) -> None:
    """Issue 14: the two signatories are compared by account, whatever name the account shows
    (renamed, or typed with other spacing and case), never by the name typed."""
    pat = person("Pat Provider", OFFICE)
    row = _fire(session, _proposed(session, services), "record_provider_agreement", principal=pat)
    with pytest.raises(GuardRefused, match="is_not_provider_signatory"):
        _fire(session, row, "record_commissioner_agreement", principal=person(second, OFFICE, user_id=pat.user_id))
    session.rollback()
    with pytest.raises(GuardRefused, match="not has_provider_agreement"):  # recorded once, not overwritten
        _fire(session, row, "record_provider_agreement", principal=person("Someone Else", OFFICE))
    session.rollback()
    fresh = session.get(Surveillance, row.id)
    assert fresh is not None and fresh.commissioner_agreed_by is None and fresh.provider_agreed_by == "Pat Provider"
    assert fresh.provider_agreed_user_id == pat.user_id


def test_two_accounts_that_share_a_name_are_two_signatories(session: Session, services: dict[str, int]) -> None:
    """Two different people may have the same display name: two accounts, two signatures."""
    pat = person("Pat Provider", OFFICE)
    row = _fire(session, _proposed(session, services), "record_provider_agreement", principal=pat)
    namesake = person("Pat Provider", OFFICE, user_id=pat.user_id + 500)
    row = _fire(session, row, "record_commissioner_agreement", principal=namesake)
    assert (row.provider_agreed_user_id, row.commissioner_agreed_user_id) == (pat.user_id, namesake.user_id)
    assert _fire(session, row, "agree").state == Q.AGREED


def test_the_agree_guard_itself_refuses_one_signatory(session: Session, services: dict[str, int]) -> None:
    """Even if both fields name the same person (e.g. set by hand), the decision is not agreed."""
    row = _put_in(
        session, _proposed(session, services), Q.OPTIONS_PROPOSED, **{**BOTH, "commissioner_agreed_by": "pat provider"}
    )
    with pytest.raises(GuardRefused, match="has_two_signatories"):
        _fire(session, row, "agree")


def test_revising_options_clears_agreement_and_restarts_the_deadline(
    session: Session, services: dict[str, int]
) -> None:
    row = _fire(
        session, _proposed(session, services), "record_provider_agreement", principal=person("Pat Provider", OFFICE)
    )
    row = _fire(
        session, row, "propose_options", params={"options": "routine,peer_review"}, clock=FixedClock(date(2026, 12, 21))
    )
    assert (
        row.provider_agreed_by is None and row.provider_agreed_on is None and row.options == ["routine", "peer_review"]
    )
    open_deadlines = engine.pending_deadlines(session, "surveillance", row.id)  # type: ignore[arg-type]
    assert [(d.name, d.due_on) for d in open_deadlines] == [
        ("agreement", calendar_for("ENG").add_working_days(date(2026, 12, 21), 20))
    ]


def test_agreement_deadline_is_local_policy(
    session: Session, services: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    row = _proposed(session, services)
    # 14 Dec 2026 + 20 working days, skipping Christmas, Boxing Day (substitute 28th) and New Year
    assert [(d.name, d.due_on) for d in engine.pending_deadlines(session, "surveillance", row.id)] == [
        ("agreement", date(2027, 1, 14))
    ]  # type: ignore[arg-type]
    monkeypatch.setenv("PEERWATCH_SURVEILLANCE_AGREEMENT_WORKING_DAYS", "5")
    other = _fire(
        session,
        _assess(session, services, 5, 4, service="Valley Burns Service"),
        "propose_options",
        params={"options": "1"},
    )
    assert [d.due_on for d in engine.pending_deadlines(session, "surveillance", other.id)] == [date(2026, 12, 21)]  # type: ignore[arg-type]
    monkeypatch.setenv("PEERWATCH_SURVEILLANCE_AGREEMENT_WORKING_DAYS", "soon")
    with pytest.raises(InvalidInput, match="not a whole number"):
        _fire(
            session,
            _assess(session, services, 5, 4, service="Severnside Trauma Unit"),
            "propose_options",
            params={"options": "1"},
        )


def test_late_agreement_chases_only_the_party_missing(db: Engine, session: Session, services: dict[str, int]) -> None:
    from states.engine.sweep import run_sweep

    row = _fire(
        session, _proposed(session, services), "record_provider_agreement", principal=person("Pat Provider", OFFICE)
    )
    summary = run_sweep(db, FixedClock(date(2027, 1, 15)))
    assert [(a["kind"], a["id"], a["deadline"], a["action"]) for a in summary.actions] == [
        ("surveillance", row.id, "agreement", "overdue_notice")
    ]
    chases = session.exec(select(OutboxMessage).where(OutboxMessage.template == "surveillance_agreement_chase")).all()
    roles = sorted(p["role"] for m in chases for p in m.to)
    assert roles == ["commissioning-lead", "network-manager"]  # not the provider, who has agreed
    assert "the commissioner" in rendered(chases[0]).body_text and "the provider\n" not in rendered(chases[0]).body_text
    assert run_sweep(db, FixedClock(date(2027, 1, 16))).actions == []  # once


# ---------------------------------------------------------------- option 3


def test_option_3_proposes_a_linked_visit_when_agreed(session: Session, services: dict[str, int]) -> None:
    row = _proposed(session, services, "routine,peer_review")
    assert session.exec(select(Visit)).all() == []  # proposing the option is not yet a visit
    row = _fire(session, row, "record_provider_agreement", principal=person("Pat Provider", OFFICE))
    row = _fire(session, row, "record_commissioner_agreement", principal=person("Cy Commissioner", OFFICE))
    version = row.version
    row = _fire(session, row, "agree", principal=person("Nia Manager", NM), clock=FixedClock(date(2026, 12, 16)))
    assert row.state == Q.AGREED and row.version == version + 1
    visit = session.exec(select(Visit)).one()
    assert row.visit_id == visit.id
    assert (visit.service_id, visit.state, visit.reason) == (services[MRH], "proposed", "QNT surveillance option 3")
    propose = session.exec(select(AuditEvent).where(AuditEvent.kind == "visit", AuditEvent.item_id == visit.id)).one()
    assert (propose.trigger, propose.actor, propose.role, propose.to_state) == (
        "propose",
        "Nia Manager",
        NM,
        "proposed",
    )
    agreed = session.exec(select(OutboxMessage).where(OutboxMessage.template == "surveillance_agreed")).one()
    assert f"Visit-{visit.id}" in rendered(agreed).body_text and "Option 3: peer review" in rendered(agreed).body_text
    assert {p["role"] for p in agreed.cc} == {"commissioning-lead", "network-manager"}
