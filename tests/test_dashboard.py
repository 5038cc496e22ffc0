"""The Network Manager's dashboard (issue 7 item 2): the read model in ``states/views/register.py``
against items moved by the engine and the sweep, the ``peerwatch dashboard`` command end to
end, and the written page rendered by headless Chromium (the figures are filled in by its JS).
"""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, col, select

from models import AuditEvent, Contact, Deadline, Network, Risk, Service
from models.selfassessment import SelfAssessment
from states import engine
from states.clock import local_date
from states.machines.risk import FORMAL_NOTIFICATION_WORKING_DAYS
from states.machines.spec import get_spec
from states.policy import Policy
from states.roles import SYSTEM_ACTOR
from states.views import register
from tests.support_dashboard import (
    ACC,
    CAL,
    D0,
    MERSEY,
    NM,
    OFFICE,
    TODAY,
    World,
    fire,
    world,  # noqa: F401 (pytest fixtures)
)


def _contact(s: Session, role: str, **scope: int) -> str:
    q = select(Contact.name).where(Contact.role == role)
    for k, v in scope.items():
        q = q.where(getattr(Contact, k) == v)
    return s.exec(q.order_by(col(Contact.id))).first()  # type: ignore[return-value]


def _network_id(s: Session, code: str) -> int:
    return s.exec(select(Network.id).where(Network.code == code)).one()  # type: ignore[return-value]


def _bucket(days: int) -> str:
    return next(label for label, upper in register.AGE_BUCKETS if upper is None or days <= upper)


# ---------------------------------------------------------------- (a) the read model


def test_risk_register_shows_owner_next_step_and_due_date(
    session: Session, world: World, services: dict[str, int]
) -> None:
    s, spec = session, get_spec("risk")
    assert {r: s.get(Risk, i).state for r, i in (("sc", world.sc), ("ir", world.ir), ("gc", world.gc))} == {
        "sc": "escalated",
        "ir": "identified",
        "gc": "work_programme",
    }  # what the engine and the sweep did
    fired = s.exec(select(Deadline.status).where(Deadline.kind == "risk", Deadline.item_id == world.ir)).one()
    assert fired == "fired"  # the IR's overdue letter went: its deadline is no longer "open"

    rows = register.risk_register(s, TODAY, "WMTN")
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {world.sc, world.ir, world.gc}  # not the withdrawn GC, not the other network's SC
    manager = _contact(s, NM, network_id=_network_id(s, "WMTN"))
    ir = by_id[world.ir]
    assert (ir["ref"], ir["state"], ir["owner"], ir["owner_name"], ir["deadline"]) == (
        f"IR-{world.ir}",
        "identified",
        NM,
        manager,
        "formal_notification",
    )
    assert ir["due_on"] == CAL.add_working_days(D0, FORMAL_NOTIFICATION_WORKING_DAYS).isoformat()
    assert ir["overdue"] is True and ir["next_step"] == spec.deadline_rules["formal_notification"].step
    sc = by_id[world.sc]
    assert (sc["owner"], sc["owner_name"], sc["due_on"], sc["overdue"]) == (
        register.DEFAULT_OWNER,
        manager,
        None,
        False,
    )
    assert sc["next_step"] == spec.next_step["escalated"]
    gc = by_id[world.gc]
    assert (gc["due_on"], gc["overdue"], gc["owner"]) == (
        CAL.add_weeks(D0, Policy().monitoring_weeks).isoformat(),
        False,
        NM,
    )
    assert {r["days_open"] for r in rows} == {(TODAY - D0).days}
    assert [r["id"] for r in rows] == [
        r["id"] for r in sorted(rows, key=lambda r: (r["service"], r["due_on"] or "9999"))
    ]

    (mersey,) = register.risk_register(s, TODAY, "CMMTN")
    trust = s.get(Service, services[MERSEY]).organisation_id  # type: ignore[union-attr]
    (due,) = [d.due_on for d in engine.pending_deadlines(s, "risk", world.mersey_sc)]
    assert (mersey["owner"], mersey["owner_name"], mersey["due_on"], mersey["overdue"]) == (
        "chief-executive",
        _contact(s, "chief-executive", organisation_id=trust),
        due.isoformat(),
        False,
    )
    assert len(register.risk_register(s, TODAY)) == len(rows) + 1


def test_overdue_lists_passed_deadlines_until_someone_acts(session: Session, world: World) -> None:
    s = session
    (late,) = register.overdue(s, TODAY, "WMTN")
    due = CAL.add_working_days(D0, FORMAL_NOTIFICATION_WORKING_DAYS)
    assert (late["kind"], late["id"], late["deadline"], late["due_on"], late["owner"]) == (
        "risk",
        world.ir,
        "formal_notification",
        due.isoformat(),
        NM,
    )
    assert late["working_days_overdue"] == CAL.working_days_between(due, TODAY) > 0
    acc = register.overdue(s, TODAY, "WMACC")  # the report on the self-assessment, due 8 weeks after receipt
    assert [(x["kind"], x["deadline"], x["owner"]) for x in acc] == [("report", "report_due", OFFICE)]
    assert len(register.overdue(s, TODAY)) == 2

    fire(s, "risk", world.ir, "send_formal_notification", TODAY)  # the letter goes at last
    s.commit()
    assert register.overdue(s, TODAY, "WMTN") == []
    ir = next(r for r in register.risk_register(s, TODAY, "WMTN") if r["id"] == world.ir)
    assert (ir["deadline"], ir["owner"], ir["overdue"]) == ("response", "chief-executive", False)


def test_upcoming_covers_the_next_twenty_working_days(session: Session, world: World) -> None:
    s = session
    horizon = CAL.add_working_days(TODAY, 20)
    for code, ids in (("WMTN", (world.sc, world.ir, world.gc, world.withdrawn)), ("CMMTN", (world.mersey_sc,))):
        expected = {
            ("risk", d.item_id, d.name)
            for i in ids
            for d in engine.pending_deadlines(s, "risk", i)
            if d.status == "open" and TODAY <= d.due_on <= horizon
        }
        got = register.upcoming(s, TODAY, network_code=code)
        assert expected and {(x["kind"], x["id"], x["deadline"]) for x in got} == expected
        assert all(
            x["working_days_left"] == CAL.working_days_between(TODAY, date.fromisoformat(x["due_on"])) for x in got
        )
    assert register.upcoming(s, TODAY, working_days=1, network_code="WMTN") == []


def test_open_items_by_state_and_age(session: Session, world: World) -> None:
    s = session
    rows = register.open_by_state_and_age(s, TODAY, "WMTN")
    assert {(r["kind"], r["state"]): r["count"] for r in rows} == {
        ("risk", "escalated"): 1,
        ("risk", "identified"): 1,
        ("risk", "work_programme"): 1,
    }
    assert all(r["ages"][_bucket((TODAY - D0).days)] == 1 == sum(r["ages"].values()) for r in rows)
    acc = {(r["kind"], r["state"]) for r in register.open_by_state_and_age(s, TODAY, "WMACC")}
    assert acc == {("selfassessment", "validated"), ("report", "drafting")}
    published_or_closed = {(r["kind"], r["state"]) for r in register.open_by_state_and_age(s, TODAY)}
    assert ("report", "approved") in published_or_closed and ("risk", "withdrawn") not in published_or_closed


def test_escalations_come_from_the_audit_trail(session: Session, world: World) -> None:
    s = session
    at = s.exec(
        select(AuditEvent.at).where(
            AuditEvent.kind == "risk", AuditEvent.item_id == world.sc, AuditEvent.to_state == "escalated"
        )
    ).one()
    (e,) = register.escalations(s, TODAY, "WMTN")
    assert (e["id"], e["trigger"], e["actor"], e["escalated_on"]) == (
        world.sc,
        "still_no_response",
        SYSTEM_ACTOR,
        local_date(at).isoformat(),
    )
    assert register.escalations(s, TODAY, "CMMTN") == []
    assert register.escalations(s, TODAY, "WMTN", days=(TODAY - local_date(at)).days - 1) == []
    assert len(register.escalations(s, TODAY, "WMTN", days=(TODAY - local_date(at)).days)) == 1


def test_compliance_trend_per_service_and_programme_year(session: Session, world: World) -> None:
    s = session
    assert register.compliance_trend(s, "WMTN") == []
    (rep,) = register.compliance_trend(s, "CMMTN")
    # DOMAIN.md: Met 1, Partially Met 0.5, Unmet 0; "Not applicable" is not scored. 2026-27 is year 1 of the biennial cycle.
    assert (rep["service"], rep["year"], rep["report"], rep["compliance"], rep["source"]) == (
        MERSEY,
        "2026-27",
        50.0,
        50.0,
        "report",
    )
    assert (rep["self_assessment"], rep["cycle_year"], rep["cycle_years"]) == (None, 1, 2)
    (acc,) = register.compliance_trend(s, "WMACC")  # its own report is still being drafted: not counted
    declared = s.get(SelfAssessment, world.assessment).achievement  # type: ignore[union-attr]
    assert declared is not None and declared < 50
    assert (acc["service"], acc["self_assessment"], acc["report"], acc["compliance"], acc["cycle_years"]) == (
        ACC,
        declared,
        None,
        declared,
        1,
    )
