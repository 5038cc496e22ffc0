"""The West Midlands SOP sets no quarter for its annual steps (DOMAIN.md "Programme cycles",
issue 12 item 15): the programme file's quarters are local policy, shown as such, and a network
moves a step for itself, audited through the engine; a seed-fixed programme (CMMTN) cannot."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from sqlmodel import Session, func, select

from models import AuditEvent, Deadline, Network
from models.cycle import PhaseQuarter, ProgrammePhase
from states import engine
from states.clock import FixedClock
from states.engine.system import SYSTEM_PRINCIPAL
from states.errors import InvalidInput, PermissionDenied
from states.principal import Grant, Principal
from states.programmes import programme
from states.services.cycle import plan_year, status
from states.services.cycle_quarters import set_phase_quarter
from states.views.quarters import placements
from tests.factories import person

NM = "network-manager"
APRIL = date(2026, 4, 20)  # Q1 of 2026-27: every WM phase but the first is still pending


def _net(session: Session, code: str) -> Network:
    return session.exec(select(Network).where(Network.code == code)).one()


def _phase(session: Session, code: str, year: int, key: str) -> ProgrammePhase:
    net = _net(session, code)
    return session.exec(
        select(ProgrammePhase).where(
            ProgrammePhase.network_id == net.id, ProgrammePhase.programme_year == year, ProgrammePhase.key == key
        )
    ).one()


def _counts(session: Session) -> tuple[int, ...]:
    return tuple(
        session.exec(select(func.count()).select_from(t)).one()
        for t in (AuditEvent, PhaseQuarter, ProgrammePhase, Deadline)
    )


def test_the_programme_files_say_where_their_quarters_come_from() -> None:
    assert programme("wm-annual").quarters_are_local_policy
    cmmtn = programme("cmmtn-biennial")
    assert not cmmtn.quarters_are_local_policy and cmmtn.quarters_source == "seed 001"


def test_status_says_the_wm_quarters_are_local_policy_and_cmmtn_s_come_from_the_seed(
    session: Session, services: dict[str, int]
) -> None:
    rows = {r["network"]: r for r in status(session, APRIL)}
    assert rows["WMTN"]["quarters"].startswith("quarters are local policy (the SOP sets none)")
    assert rows["CMMTN"]["quarters"] == "quarters set by seed 001"
    visits = next(p for p in rows["WMTN"]["placements"] if p["step"] == "visits")
    assert (visits["quarter"], visits["source"], visits["editable"]) == (
        "Q3",
        "local policy default (the SOP sets no quarter)",
        True,
    )
    assert all(not p["editable"] for p in rows["CMMTN"]["placements"])


def test_a_network_moves_a_step_through_the_engine_and_later_years_follow(
    session: Session, services: dict[str, int]
) -> None:
    net = _net(session, "WMTN")
    plan_year(session, net, 2026, FixedClock(APRIL), principal=SYSTEM_PRINCIPAL)
    session.commit()
    before = _phase(session, "WMTN", 2026, "visits")
    assert (before.quarter, before.opens_on, before.state) == ("Q3", date(2026, 10, 1), "pending")
    out = set_phase_quarter(
        session,
        net,
        "visits",
        "q4",
        principal=person("Dr Asha Patel", NM),
        clock=FixedClock(APRIL),
        note="network board, 14 April: visits after the winter",
    )
    session.commit()
    moved = _phase(session, "WMTN", 2026, "visits")
    assert out.rescheduled == [moved] and out.planned == 0
    assert (moved.quarter, moved.opens_on, moved.due_on) == ("Q4", date(2027, 1, 1), date(2027, 3, 31))
    (opening,) = [d for d in engine.pending_deadlines(session, "phase", moved.id) if d.name == "opening"]
    assert opening.due_on == date(2026, 12, 31)  # the day before it opens; the Q3 one is closed
    event = engine.history(session, "phase", moved.id)[-1]
    assert (event.trigger, event.actor, event.role, event.note) == (
        "set_quarter",
        "Dr Asha Patel",
        NM,
        "network board, 14 April: visits after the winter",
    )
    assert event.data["params"]["quarter"] == "Q4" and event.data["params"]["local_policy"] is True
    # other networks keep the programme file's quarter; the next year of this one follows
    other = next(n for n in session.exec(select(Network)) if n.cycle == "annual" and n.code != "WMTN")
    plan_year(session, other, 2026, FixedClock(APRIL), principal=SYSTEM_PRINCIPAL)
    plan_year(session, net, 2027, FixedClock(APRIL), principal=SYSTEM_PRINCIPAL)
    session.commit()
    assert _phase(session, other.code, 2026, "visits").quarter == "Q3"
    assert _phase(session, "WMTN", 2027, "visits").quarter == "Q4"
    (shown,) = [p for p in placements(session, net, 2026) if p["step"] == "visits"]
    assert shown["quarter"] == "Q4" and shown["source"].startswith(
        "local policy: set by Dr Asha Patel on 2026-04-20 from 2026-27"
    )
    # the sweep opens it in its new quarter, not the old one
    assert (
        "visits"
        not in " ".join(
            next(r for r in status(session, date(2026, 10, 15)) if r["network"] == "WMTN")["phases"]
        ).lower()
    )


def _mover(session: Session, kw: dict[str, Any]) -> Principal:
    """Dr Asha Patel as a Network Manager for the whole installation (or in ``role``), or granted
    the role only for the network ``granted_for``."""
    if "granted_for" in kw:
        net_id = _net(session, kw["granted_for"]).id
        return Principal(4321, "Dr Asha Patel", (Grant(NM, "network", net_id),), prefer=NM)
    return person("Dr Asha Patel", kw.get("role", NM))


@pytest.mark.parametrize(
    ("kw", "exc", "message"),
    [
        ({"network": "CMMTN", "step": "documents"}, InvalidInput, "set by seed 001, not local policy"),
        ({"step": "lunch"}, InvalidInput, "step 'lunch' is not in West Midlands annual programme"),
        ({"step": "board_monitoring"}, InvalidInput, "happens every quarter"),
        ({"quarter": "Q5"}, InvalidInput, "quarter 'Q5'"),
        ({"role": "network-office"}, PermissionDenied, "may not move a programme step"),
        ({"granted_for": "CMMTN"}, PermissionDenied, "not in the scope of move a programme step of WMTN"),
        ({"step": "declarations_circulated", "quarter": "Q2"}, InvalidInput, "is already open: move it from next year"),
        (
            {"day": date(2026, 8, 3), "quarter": "Q1", "step": "reports_and_dashboards"},
            InvalidInput,
            "Q1 of 2026-27 ended on 2026-06-30",
        ),
        ({"from_year": 2025}, InvalidInput, "from year 2025-26 has passed"),
    ],
)
def test_bad_moves_are_refused_and_change_nothing(
    session: Session, services: dict[str, int], kw: dict[str, Any], exc: type[Exception], message: str
) -> None:
    day = kw.get("day", APRIL)
    for code in ("WMTN", "CMMTN"):
        plan_year(session, _net(session, code), 2026, FixedClock(date(2026, 4, 1)), principal=SYSTEM_PRINCIPAL)
    session.commit()
    from states.engine.sweep import run_sweep

    run_sweep(session.get_bind(), FixedClock(date(2026, 4, 1)))  # type: ignore[arg-type]
    session.expire_all()
    counts = _counts(session)
    with pytest.raises(exc, match=message):
        set_phase_quarter(
            session,
            _net(session, kw.get("network", "WMTN")),
            kw.get("step", "visits"),
            kw.get("quarter", "Q4"),
            principal=_mover(session, kw),
            clock=FixedClock(day),
            from_year=kw.get("from_year"),
        )
    session.rollback()
    assert _counts(session) == counts


def test_moving_a_step_in_a_year_not_yet_planned_plans_it_and_audits_the_move(
    session: Session, services: dict[str, int]
) -> None:
    net = _net(session, "WMTN")
    out = set_phase_quarter(
        session,
        net,
        "declarations_validated",
        "Q3",
        principal=person("Mr Tom Hughes", "regional-lead"),
        clock=FixedClock(APRIL),
        from_year=2027,
    )
    session.commit()
    assert out.planned == 8 and len(out.rescheduled) == 1  # 4 steps + the quarterly one x 4
    phase = _phase(session, "WMTN", 2027, "declarations_validated")
    assert (phase.quarter, phase.opens_on) == ("Q3", date(2027, 10, 1))
    assert [e.trigger for e in engine.history(session, "phase", phase.id)] == ["plan", "set_quarter"]
    # a later change from the same year replaces it (history of the change is in the audit trail)
    set_phase_quarter(
        session,
        net,
        "declarations_validated",
        "Q2",
        principal=person("Mr Tom Hughes", "regional-lead"),
        clock=FixedClock(APRIL),
        from_year=2027,
    )
    session.commit()
    assert _phase(session, "WMTN", 2027, "declarations_validated").quarter == "Q2"
    assert session.exec(select(func.count()).select_from(PhaseQuarter)).one() == 1


def test_cli_cycle_phase_set_and_status_show_local_policy(
    db_url: str,
    training: None,
    me: Principal,
    session: Session,
    services: dict[str, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cli.main import main

    def run(*args: str) -> tuple[int, Any]:
        with pytest.raises(SystemExit) as exit_:
            main(["--as-of", "2026-04-20", *args])
        return exit_.value.code, capsys.readouterr()  # type: ignore[return-value]

    code, out = run("cycle", "status")
    assert code == 0 and "quarters are local policy (the SOP sets none)" in " ".join(out.out.split())
    assert "quarters set by seed 001" in out.out
    code, out = run("--json", "cycle", "set-quarter", "--network", "WMTN", "--step", "visits", "--quarter", "Q4")
    assert code == 0, out.err
    result = json.loads(out.out)
    assert (
        result["quarter"] == "Q4"
        and result["phases_planned"] == 8
        and result["rescheduled"][0]["opens_on"] == "2027-01-01"
    )
    code, out = run("--json", "cycle", "quarters", "--network", "WMTN")
    visits = next(r for r in json.loads(out.out) if r["step"] == "visits")
    assert visits["quarter"] == "Q4" and visits["source"].startswith("local policy: set by Test Operator")
    code, out = run("cycle", "set-quarter", "--network", "CMMTN", "--step", "documents", "--quarter", "Q2")
    assert code == 2 and "set by seed 001" in out.err


def test_the_cycle_status_artifact_says_where_the_quarters_come_from(
    session: Session, services: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Prefect artifact API is the edge: the table handed to it is checked."""
    import flows.artifacts as artifacts

    tables: dict[str, list[dict[str, Any]]] = {}
    monkeypatch.setattr(
        artifacts, "create_table_artifact", lambda key, table, description: tables.__setitem__(key, table)
    )
    artifacts.publish_cycle_status(session, APRIL)
    rows = {r["network"]: r for r in tables["cycle-status"]}
    assert rows["WMTN"]["quarters"].startswith("quarters are local policy (the SOP sets none)")
    assert rows["CMMTN"]["quarters"] == "quarters set by seed 001"
    assert {"what": "quarters", "value": rows["WMTN"]["quarters"]} in tables["cycle-status-wmtn"]
