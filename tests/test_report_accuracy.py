"""The factual accuracy check: what counts as an inaccuracy, the two decisions, approval and amendment."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlmodel import Session, col, func, select

from models.tables import AccuracyItem, Report
from states import engine
from states.clock import FixedClock
from states.errors import GuardRefused, InvalidInput, NotFound, PermissionDenied
from states.machines.report import document
from tests.factories import person
from tests.support_reports import CLAIM, NM, OFFICE, OPERATOR, RL, fire, in_check, row_counts, with_items

# --------------------------------------------------------------------------- the factual accuracy check


@pytest.mark.parametrize(
    "params",
    [
        {"text": "The rota shows two consultants, not one", "after_visit": "yes"},
        {"text": "We have since recruited a second trauma coordinator"},
        {"text": "A new escalation policy is now in place"},
        {"text": "Following the visit, the audit was repeated and shows 95%"},
        {"text": "The  trolley check HAS\nSINCE been added to the daily list"},
    ],
    ids=["after_visit flag", "have since", "now in place", "following the visit", "case and spacing"],
)
def test_changes_after_the_visit_are_not_inaccuracies(
    session: Session, services: dict[str, int], params: dict[str, str]
) -> None:
    report = in_check(session, services)
    version, counts = report.version, row_counts(session)
    with pytest.raises(GuardRefused, match="only observations on the day count"):
        engine.fire(
            session,
            "report",
            report.id,
            "record_inaccuracy",
            principal=person("t", OFFICE),  # type: ignore[arg-type]
            clock=FixedClock(date(2026, 12, 21)),
            params=params,
        )
    session.rollback()
    fresh = session.get(Report, report.id)
    assert fresh is not None and (fresh.state, fresh.version) == ("accuracy_check", version)
    assert row_counts(session) == counts
    assert session.exec(select(func.count()).select_from(AccuracyItem)).one() == 0
    assert [d.name for d in engine.pending_deadlines(session, "report", report.id)] == ["accuracy_reply"]  # type: ignore[arg-type]


def test_an_inaccuracy_about_the_day_is_recorded(session: Session, services: dict[str, int]) -> None:
    report, (item_id,) = with_items(session, services, CLAIM)
    item = session.get(AccuracyItem, item_id)
    assert item is not None and (item.report_id, item.text, item.outcome) == (report.id, CLAIM, None)
    assert report.state == "inaccuracies_received"
    with pytest.raises(InvalidInput, match="needs text"):
        engine.fire(
            session,
            "report",
            report.id,
            "record_inaccuracy",
            principal=person("t", OFFICE),  # type: ignore[arg-type]
            clock=FixedClock(date(2026, 12, 21)),
            params={"text": "  "},
        )


def _decide(
    session: Session, report_id: int, item_id: int, role: str, actor: str, decision: str, day: date = date(2026, 12, 22)
) -> None:
    fire(session, report_id, "decide_inaccuracy", day, role=role, actor=actor, item_id=item_id, decision=decision)


def _refused_decision(session: Session, report_id: int, exc: type[Exception], match: str, **kw: Any) -> None:
    args: dict[str, Any] = {"role": RL, "actor": "Mr Tom Hughes", "params": {}, **kw}
    counts = row_counts(session)
    before = [
        (i.manager_decision, i.lead_decision) for i in session.exec(select(AccuracyItem).order_by(col(AccuracyItem.id)))
    ]
    with pytest.raises(exc, match=match):
        engine.fire(
            session,
            "report",
            report_id,
            "decide_inaccuracy",
            principal=person(args["actor"], args["role"]),
            clock=FixedClock(date(2026, 12, 22)),
            params=args["params"],
        )
    session.rollback()
    assert row_counts(session) == counts
    assert [
        (i.manager_decision, i.lead_decision) for i in session.exec(select(AccuracyItem).order_by(col(AccuracyItem.id)))
    ] == before


def test_manager_and_lead_must_be_two_people(session: Session, services: dict[str, int]) -> None:
    report, (item,) = with_items(session, services, CLAIM)
    _decide(session, report.id, item, NM, "Dr Asha Patel", "accepted")  # type: ignore[arg-type]
    _refused_decision(
        session,
        report.id,
        GuardRefused,
        "must be two people",  # type: ignore[arg-type]
        actor="Dr Asha Patel",
        params={"item_id": item, "decision": "accepted"},
    )
    _decide(session, report.id, item, RL, "Mr Tom Hughes", "accepted")  # type: ignore[arg-type]
    fresh = session.get(AccuracyItem, item)
    assert fresh is not None and (fresh.manager_actor, fresh.lead_actor, fresh.outcome) == (
        "Dr Asha Patel",
        "Mr Tom Hughes",
        "accepted",
    )


def test_decisions_are_for_the_network_manager_and_regional_lead_only(
    session: Session, services: dict[str, int]
) -> None:
    report, (item,) = with_items(session, services, CLAIM)
    for role in (OFFICE, OPERATOR):
        _refused_decision(
            session,
            report.id,
            PermissionDenied,
            f"role '{role}' may not fire 'decide_inaccuracy'",  # type: ignore[arg-type]
            role=role,
            params={"item_id": item, "decision": "accepted"},
        )


def test_a_role_decides_once(session: Session, services: dict[str, int]) -> None:
    report, (item,) = with_items(session, services, CLAIM)
    _decide(session, report.id, item, NM, "Dr Asha Patel", "rejected")  # type: ignore[arg-type]
    _refused_decision(
        session,
        report.id,
        GuardRefused,
        "already has the network-manager decision \\(rejected\\)",  # type: ignore[arg-type]
        role=NM,
        actor="Ms Grace Okafor",
        params={"item_id": item, "decision": "accepted"},
    )


@pytest.mark.parametrize(
    ("params", "exc", "match"),
    [
        ({"decision": "accepted"}, InvalidInput, "needs item_id"),
        ({"item_id": "ITEM", "decision": "maybe"}, InvalidInput, "decision 'maybe'"),
        ({"item_id": 999, "decision": "accepted"}, NotFound, "inaccuracy 999 not found"),
    ],
)
def test_bad_decisions_are_refused(
    session: Session, services: dict[str, int], params: dict[str, Any], exc: type[Exception], match: str
) -> None:
    report, (item,) = with_items(session, services, CLAIM)
    params = {k: (item if v == "ITEM" else v) for k, v in params.items()}
    _refused_decision(session, report.id, exc, match, params=params)  # type: ignore[arg-type]


def test_approve_waits_for_both_decisions_on_every_item(session: Session, services: dict[str, int]) -> None:
    report, (first, second) = with_items(
        session, services, CLAIM, "Table 2 gives 12 beds; there were 14 open on the day"
    )
    _decide(session, report.id, first, NM, "Dr Asha Patel", "accepted")  # type: ignore[arg-type]
    _decide(session, report.id, first, RL, "Mr Tom Hughes", "accepted")  # type: ignore[arg-type]
    _decide(session, report.id, second, NM, "Dr Asha Patel", "rejected")  # type: ignore[arg-type]
    version, counts = report.version, row_counts(session)
    with pytest.raises(GuardRefused, match="are_all_inaccuracies_decided"):
        engine.fire(
            session, "report", report.id, "approve", principal=person("rl", RL), clock=FixedClock(date(2026, 12, 23))
        )  # type: ignore[arg-type]
    session.rollback()
    assert (report.state, report.version, report.approved_on, row_counts(session)) == (
        "inaccuracies_received",
        version,
        None,
        counts,
    )
    _decide(session, report.id, second, RL, "Mr Tom Hughes", "accepted", date(2026, 12, 23))  # type: ignore[arg-type]
    out = fire(session, report.id, "approve", date(2026, 12, 23), role=RL)  # type: ignore[arg-type]
    assert (out.row.state, out.row.approved_on) == ("approved", date(2026, 12, 23))  # type: ignore[attr-defined]
    assert [i["outcome"] for i in document(session, report)["inaccuracies"]] == ["accepted", "rejected"]


@pytest.mark.parametrize(
    ("manager", "lead", "outcome"),
    [
        ("accepted", "accepted", "accepted"),
        ("accepted", "rejected", "rejected"),
        ("rejected", "accepted", "rejected"),
        ("rejected", "rejected", "rejected"),
    ],
)
def test_amended_only_if_both_accept(
    session: Session, services: dict[str, int], manager: str, lead: str, outcome: str
) -> None:
    report, (item,) = with_items(session, services, CLAIM)
    _decide(session, report.id, item, RL, "Mr Tom Hughes", lead)  # type: ignore[arg-type]
    fresh = session.get(AccuracyItem, item)
    assert fresh is not None and fresh.outcome is None  # one decision is not enough
    _decide(session, report.id, item, NM, "Dr Asha Patel", manager)  # type: ignore[arg-type]
    assert fresh.outcome == outcome
    assert (fresh.manager_decision, fresh.lead_decision) == (manager, lead)
