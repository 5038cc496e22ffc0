"""Programme cycles: where each network is by date, a whole cycle walked by dates, documents,
carry-forward, and the phase and submission machines (seeds 000 s5, 001)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from models import AuditEvent, Contact, Deadline, Network, OutboxMessage, Risk
from models.cycle import CarryForward, ProgrammePhase, Submission, SubmissionFile
from states import engine
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from states.engine.system import SYSTEM_PRINCIPAL
from states.errors import InvalidInput, InvalidTrigger, NotFound
from states.machines.spec import get_spec
from states.programmes import phases_for, programme, where
from states.services.cycle import plan_year, status
from tests.factories import person

OFFICE = "network-office"


def _net(session: Session, code: str) -> Network:
    return session.exec(select(Network).where(Network.code == code)).one()


def _plan(session: Session, code: str, year: int, day: date | None = None) -> dict[str, int]:
    """Plan as the daily cycle flow does: as the system principal."""
    out = plan_year(session, _net(session, code), year, FixedClock(day or date(year, 4, 1)), principal=SYSTEM_PRINCIPAL)
    session.commit()
    return out


def _phases(session: Session, code: str, year: int) -> dict[str, ProgrammePhase]:
    net = _net(session, code)
    return {
        p.key: p
        for p in session.exec(
            select(ProgrammePhase).where(ProgrammePhase.network_id == net.id, ProgrammePhase.programme_year == year)
        )
    }


def _letters(session: Session, template: str) -> list[OutboxMessage]:
    return list(session.exec(select(OutboxMessage).where(OutboxMessage.template == template)))


# ----------------------------------------------------------------- where everyone is, by date

MONTHS = [date(2026, 4, 1) + timedelta(days=31 * i) for i in range(24)]


@pytest.mark.parametrize("day", MONTHS, ids=[d.isoformat() for d in MONTHS])
def test_every_date_from_april_2026_to_march_2028_puts_each_network_in_the_right_year_and_quarter(
    session: Session, services: dict[str, int], day: date
) -> None:
    rows = {r["network"]: r for r in status(session, day)}
    start = day.year if day.month >= 4 else day.year - 1
    quarter = {4: "Q1", 5: "Q1", 6: "Q1", 7: "Q2", 8: "Q2", 9: "Q2", 10: "Q3", 11: "Q3", 12: "Q3"}.get(day.month, "Q4")
    label = f"{start}-{str(start + 1)[2:]}"
    for code in ("WMTN", "WMACC"):
        assert (rows[code]["programme_year"], rows[code]["cycle_year"], rows[code]["quarter"]) == (label, 1, quarter)
    assert rows["CMMTN"]["programme_year"] == label and rows["CMMTN"]["quarter"] == quarter
    assert rows["CMMTN"]["cycle_year"] == (1 if start == 2026 else 2)  # 2026-27 is year 1, 2027-28 year 2 (seed 001)


def test_biennial_years_differ_and_both_q1_documents_are_due_30_june() -> None:
    cm = programme("cmmtn-biennial")
    y1 = {p.key: p for p in phases_for(cm, 2026)}
    y2 = {p.key: p for p in phases_for(cm, 2027)}
    assert {"self_assessment", "peer_review_meetings", "reports_circulated"} <= set(y1)
    assert {"submissions_review", "follow_up_approach", "informal_reviews"} <= set(y2)
    assert not {"submissions_review", "informal_reviews"} & set(y1)
    assert y1["documents"].due_on == date(2026, 6, 30) and y2["documents"].due_on == date(2027, 6, 30)
    assert [k for k in y1 if k.startswith("clinical_group_update")] == [
        f"clinical_group_update:Q{i}" for i in range(1, 5)
    ]
    assert y1["reports_circulated"].opens_on == date(2027, 1, 1) and y1["reports_circulated"].due_on == date(
        2027, 3, 31
    )
    assert where(cm, date(2028, 4, 1))["cycle_year"] == 1  # the next cycle begins


def test_a_user_defined_programme_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "east-annual.yaml").write_text(
        "name: East annual\ncycle_years: 1\nphases:\n  - key: q3_visits\n    quarter: Q3\n    title: Visits\n"
    )
    monkeypatch.setenv("PEERWATCH_PROGRAMMES_DIR", str(tmp_path))
    east = programme("east-annual")
    assert [(p.key, p.opens_on, p.due_on) for p in phases_for(east, 2026)] == [
        ("q3_visits", date(2026, 10, 1), date(2026, 12, 31))
    ]
    (tmp_path / "broken.yaml").write_text("name: Broken\nphases:\n  - key: x\n    quarter: Q5\n    title: X\n")
    with pytest.raises(InvalidInput, match="Q5"):
        programme("broken")
    with pytest.raises(NotFound):
        programme("nowhere")


# ----------------------------------------------------------------- a whole cycle, walked by dates


def _sweep_days(db: Engine, start: date, end: date, step: int = 7) -> list[dict[str, Any]]:
    actions, day = [], start
    while day <= end:
        actions += run_sweep(db, FixedClock(day)).actions
        day += timedelta(days=step)
    return actions


def test_cheshire_and_mersey_year_1_walked_by_dates(
    db: Engine, session: Session, services: dict[str, int], tmp_path: Path
) -> None:
    assert _plan(session, "CMMTN", 2026) == {"phases": 8, "carried_forward": 0}
    assert _plan(session, "CMMTN", 2026) == {"phases": 0, "carried_forward": 0}  # once
    phases = _phases(session, "CMMTN", 2026)
    assert all(p.state == "pending" for p in phases.values())

    run_sweep(db, FixedClock(date(2026, 4, 1)))  # Q1 opens: documents requested from each Trust
    session.expire_all()
    assert phases["documents"].state == "open" and phases["self_assessment"].state == "pending"
    subs = list(session.exec(select(Submission).where(Submission.programme_year == 2026)))
    assert sorted(s.doc_type for s in subs) == sorted(
        ["annual_report", "work_plan", "operational_policy"] * 2
    )  # two Trusts
    assert len(_letters(session, "document_request")) == 6

    # One Trust sends its annual report on time: stored with its checksum.
    report = next(s for s in subs if s.doc_type == "annual_report")
    evidence = tmp_path / "annual-report-2025-26.pdf"
    evidence.write_bytes(b"%PDF-1.4 annual report")
    engine.fire(
        session,
        "submission",
        report.id,
        "receive",
        principal=person("office", OFFICE),
        clock=FixedClock(date(2026, 6, 10)),
        params={"file": str(evidence)},
    )
    engine.fire(
        session,
        "phase",
        phases["documents"].id,
        "complete",
        principal=person("office", OFFICE),
        clock=FixedClock(date(2026, 6, 30)),
    )
    session.commit()
    stored = session.exec(select(SubmissionFile).where(SubmissionFile.submission_id == report.id)).one()
    assert stored.sha256 == hashlib.sha256(evidence.read_bytes()).hexdigest() and stored.version == 1

    actions = _sweep_days(db, date(2026, 6, 26), date(2026, 7, 2), step=1)
    chased = sorted(a["id"] for a in actions if a["kind"] == "submission" and a["action"] == "overdue_notice")
    assert chased == sorted(s.id for s in subs if s.id != report.id)  # the five missing, chased once, on 1 July
    assert all(
        a["due_on"] == "2026-06-30" for a in actions if a["action"] == "overdue_notice" and a["kind"] == "submission"
    )
    session.expire_all()
    assert phases["clinical_group_update:Q1"].state == "overdue"  # nobody marked the Q1 clinical group update complete
    assert phases["self_assessment"].state == "open"  # Q2: advance notification to every Trust
    assert len(_letters(session, "advance_notification")) == 1
    ceos = {
        c.email
        for c in session.exec(select(Contact).where(Contact.role == "chief-executive"))
        if c.organisation_id in {s.organisation_id for s in subs}
    }
    assert len(ceos) == 2 and {p["email"] for p in _letters(session, "advance_notification")[0].to} == ceos

    _sweep_days(db, date(2026, 7, 8), date(2027, 4, 7), step=7)
    session.expire_all()
    by_state = {k: p.state for k, p in phases.items()}
    assert by_state["documents"] == "complete"
    assert all(by_state[k] == "overdue" for k in by_state if k != "documents")  # opened on time, never completed
    opened = session.exec(select(AuditEvent).where(AuditEvent.kind == "phase", AuditEvent.trigger == "open")).all()
    first_open = {e.item_id: e.at.date() for e in opened}
    for p in phases.values():
        assert first_open[p.id] - p.opens_on < timedelta(days=7)  # the weekly sweep opened each within its first week


def test_cheshire_and_mersey_year_2_reviews_submissions_and_tracks_more_information(
    db: Engine, session: Session, services: dict[str, int], tmp_path: Path
) -> None:
    _plan(session, "CMMTN", 2027, date(2027, 4, 1))
    phases = _phases(session, "CMMTN", 2027)
    assert {p.cycle_year for p in phases.values()} == {2} and "submissions_review" in phases
    run_sweep(db, FixedClock(date(2027, 4, 1)))
    plan = session.exec(
        select(Submission).where(Submission.programme_year == 2027, Submission.doc_type == "work_plan")
    ).first()
    assert plan is not None
    f = tmp_path / "work-plan.docx"
    f.write_bytes(b"v1")
    engine.fire(
        session,
        "submission",
        plan.id,
        "receive",
        principal=person("office", OFFICE),
        clock=FixedClock(date(2027, 6, 1)),
        params={"file": str(f)},
    )
    engine.fire(
        session,
        "submission",
        plan.id,
        "request_more_information",
        principal=person("nm", "network-manager"),
        clock=FixedClock(date(2027, 7, 5)),
        note="No actions answering recommendation 3",
    )
    session.commit()
    (d,) = engine.pending_deadlines(session, "submission", plan.id)
    assert (d.name, d.due_on) == ("more_information_due", date(2027, 7, 19))  # 10 working days (local policy)
    assert len(_letters(session, "more_information_request")) == 1
    actions = _sweep_days(db, date(2027, 7, 20), date(2027, 7, 21), step=1)
    assert [(a["deadline"], a["action"]) for a in actions if a["kind"] == "submission" and a["id"] == plan.id] == [
        ("more_information_due", "overdue_notice")
    ]
    f.write_bytes(b"v2 with recommendation 3")
    engine.fire(
        session,
        "submission",
        plan.id,
        "receive",
        principal=person("office", OFFICE),
        clock=FixedClock(date(2027, 7, 22)),
        params={"file": str(f)},
    )
    engine.fire(
        session,
        "submission",
        plan.id,
        "accept",
        principal=person("nm", "network-manager"),
        clock=FixedClock(date(2027, 7, 23)),
    )
    session.commit()
    versions = session.exec(
        select(SubmissionFile.version, SubmissionFile.sha256)
        .where(SubmissionFile.submission_id == plan.id)
        .order_by(SubmissionFile.version)
    ).all()
    assert [v for v, _ in versions] == [1, 2] and versions[0][1] != versions[1][1]
    assert plan.state == "accepted" and plan.information_requests == 1
    with pytest.raises(InvalidInput, match="not found"):
        other = session.exec(
            select(Submission).where(Submission.programme_year == 2027, Submission.state == "requested")
        ).first()
        engine.fire(
            session,
            "submission",
            other.id,
            "receive",
            principal=person("o", OFFICE),
            clock=FixedClock(date(2027, 7, 23)),  # type: ignore[union-attr]
            params={"file": str(tmp_path / "missing.pdf")},
        )


def test_west_midlands_annual_year_walked_by_dates(db: Engine, session: Session, services: dict[str, int]) -> None:
    _plan(session, "WMTN", 2026)
    phases = _phases(session, "WMTN", 2026)
    assert sorted(phases) == sorted(
        [
            "declarations_circulated",
            "declarations_validated",
            "visits",
            "reports_and_dashboards",
            *[f"board_monitoring:Q{i}" for i in range(1, 5)],
        ]
    )
    for day, expect_open in [
        (date(2026, 4, 1), {"declarations_circulated", "board_monitoring:Q1"}),
        (date(2026, 7, 1), {"declarations_validated", "board_monitoring:Q2"}),
        (date(2026, 10, 1), {"visits", "board_monitoring:Q3"}),
        (date(2027, 1, 4), {"reports_and_dashboards", "board_monitoring:Q4"}),
    ]:
        run_sweep(db, FixedClock(day))
        session.expire_all()
        assert {k for k, p in phases.items() if p.state == "open"} == expect_open, day
        for k in expect_open:
            engine.fire(
                session,
                "phase",
                phases[k].id,
                "complete",
                principal=person("nm", "network-manager"),
                clock=FixedClock(day),
            )
        session.commit()
    assert {p.state for p in phases.values()} == {"complete"}
    assert (
        session.exec(select(func.count()).select_from(Submission)).one() == 0
    )  # the WM programme requests no documents


# ----------------------------------------------------------------- carry-forward


def test_a_new_cycle_links_open_concerns_of_the_previous_one(
    session: Session, services: dict[str, int], raise_risk: Callable[..., Risk]
) -> None:
    open_sc = raise_risk("SC", service="Mersey Harbour Major Trauma Centre")
    closed = raise_risk("GC", service="Mersey Harbour Major Trauma Centre")
    engine.fire(
        session,
        "risk",
        closed.id,
        "close",
        principal=person("nm", "network-manager"),
        clock=FixedClock(date(2027, 1, 5)),
        note="done",
    )
    wm_open = raise_risk("IR", service="Midland Royal Major Trauma Centre")
    session.commit()
    assert _plan(session, "CMMTN", 2027, date(2027, 4, 1))["carried_forward"] == 0  # year 2: same cycle
    assert _plan(session, "CMMTN", 2028, date(2028, 4, 1))["carried_forward"] == 1  # a new cycle
    assert _plan(session, "CMMTN", 2028, date(2028, 4, 2))["carried_forward"] == 0  # linked once
    assert _plan(session, "WMTN", 2027, date(2027, 4, 1))["carried_forward"] == 1  # annual: every year is a new cycle
    links = {(c.network_id, c.item_id, c.state_then) for c in session.exec(select(CarryForward))}
    assert links == {
        (_net(session, "CMMTN").id, open_sc.id, "identified"),
        (_net(session, "WMTN").id, wm_open.id, "identified"),
    }
    rows = {r["network"]: r for r in status(session, date(2028, 5, 1))}
    assert rows["CMMTN"]["carried_forward"] == [f"risk {open_sc.id} (identified)"]
    assert session.get(Risk, open_sc.id).state == "identified"  # a link, not a copy: the item itself is untouched


# ----------------------------------------------------------------- the machines, table-driven

PHASE_ALLOWED = {
    ("new", "plan"),
    ("pending", "open"),
    ("open", "complete"),
    ("overdue", "complete"),
    ("open", "mark_overdue"),
    ("pending", "set_quarter"),
}  # a network moves a local-policy step: tests/test_cycle_quarters.py
SUB_ALLOWED = {
    ("new", "request"),
    ("requested", "receive"),
    ("more_info_requested", "receive"),
    ("received", "request_more_information"),
    ("received", "accept"),
}
CLOCK = ("pause_clock", "resume_clock", "extend_deadline")


@pytest.mark.parametrize(("kind", "allowed"), [("phase", PHASE_ALLOWED), ("submission", SUB_ALLOWED)])
def test_tables_cover_the_machines(kind: str, allowed: set[tuple[str, str]]) -> None:
    spec = get_spec(kind)
    got = {(s.value, t) for s in spec.states for t in spec.allowed_from(s.value) if t not in CLOCK}
    assert got == allowed


def _phase_in(session: Session, state: str) -> ProgrammePhase:
    _plan(session, "WMTN", 2026)
    p = _phases(session, "WMTN", 2026)["visits"]
    p.state = state
    session.add(p)
    session.commit()
    return p


REFUSED = [
    (s.value, t)
    for s in get_spec("phase").states
    for t in get_spec("phase").triggers()
    if (s.value, t) not in PHASE_ALLOWED and t not in CLOCK and s.value != "new"
]


@pytest.mark.parametrize(("state", "trigger"), REFUSED, ids=[f"{s}-{t}" for s, t in REFUSED])
def test_refused_phase_pairs_change_nothing(
    session: Session, services: dict[str, int], state: str, trigger: str
) -> None:
    p = _phase_in(session, state)
    before = (
        p.version,
        session.exec(select(func.count()).select_from(AuditEvent)).one(),
        session.exec(select(func.count()).select_from(Deadline)).one(),
    )
    with pytest.raises(InvalidTrigger):
        engine.fire(
            session,
            "phase",
            p.id,
            trigger,
            principal=person("nm", "network-manager"),
            clock=FixedClock(date(2026, 10, 2)),
        )
    session.rollback()
    assert (
        session.get(ProgrammePhase, p.id).version,
        session.exec(select(func.count()).select_from(AuditEvent)).one(),  # type: ignore[union-attr]
        session.exec(select(func.count()).select_from(Deadline)).one(),
    ) == before


def test_only_the_system_or_staff_open_phases_and_an_auditor_cannot(session: Session, services: dict[str, int]) -> None:
    from states.errors import PermissionDenied

    p = _phase_in(session, "pending")
    with pytest.raises(PermissionDenied):
        engine.fire(
            session, "phase", p.id, "open", principal=person("a", "auditor"), clock=FixedClock(date(2026, 10, 1))
        )
    n = session.exec(
        select(func.count()).select_from(Deadline).where(col(Deadline.item_id) == p.id, Deadline.kind == "phase")
    ).one()
    assert n == 1  # only the opening deadline from planning


# ----------------------------------------------------------------- lateness (issue 12 item 12)


def _peerwatch(*args: str) -> Any:
    """The real console script, --json (the test's database through PEERWATCH_DATABASE_URL)."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("PEERWATCH_AS_OF", "COLUMNS", "LINES")}
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("peerwatch")), "--json", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def test_a_document_due_30_june_and_received_1_july_is_recorded_as_late_and_stays_so(
    db: Engine, session: Session, services: dict[str, int], tmp_path: Path
) -> None:
    """The issue's example: due Wed 30 June 2027, received Thu 1 July 2027: one calendar day
    and one working day late, stored at receipt, shown by `submission show`, `cycle status`,
    the audit event; still so when looked at months later."""
    from models.cycle import Lateness

    _plan(session, "CMMTN", 2027, date(2027, 4, 1))
    run_sweep(db, FixedClock(date(2027, 4, 1)))
    subs = list(session.exec(select(Submission).where(Submission.programme_year == 2027).order_by(col(Submission.id))))
    late, on_time = subs[0], subs[1]
    assert late.due_on == date(2027, 6, 30)
    f = tmp_path / "annual-report.pdf"
    f.write_bytes(b"%PDF-1.4 annual report")
    engine.fire(
        session,
        "submission",
        on_time.id,
        "receive",
        principal=person("office", OFFICE),
        clock=FixedClock(date(2027, 6, 30)),
        params={"file": str(f)},
    )
    engine.fire(
        session,
        "submission",
        late.id,
        "receive",
        principal=person("office", OFFICE),
        clock=FixedClock(date(2027, 7, 1)),
        params={"file": str(f)},
    )
    session.commit()

    shown = _peerwatch("--as-of", "2027-07-01", "submission", "show", str(late.id))
    assert shown["state"] == "received"
    assert (shown["late"], shown["days_late"], shown["working_days_late"]) == (True, 1, 1)
    assert shown["lateness"] == [
        {
            "what": "Annual Report 2027-28",
            "deadline": "submission_due",
            "due_on": "2027-06-30",
            "received_on": "2027-07-01",
            "late": True,
            "days_late": 1,
            "working_days_late": 1,
            "clock_paused": False,
        }
    ]
    assert _peerwatch("submission", "show", str(on_time.id))["late"] is False

    cmmtn = next(
        n for n in _peerwatch("--as-of", "2027-07-01", "cycle", "status")["networks"] if n["network"] == "CMMTN"
    )
    row = next(x for x in cmmtn["outstanding_submissions"] if x["id"] == late.id)
    assert (row["overdue"], row["late"], row["received_on"], row["days_late"], row["working_days_late"]) == (
        False,
        True,
        "2027-07-01",
        1,
        1,
    )
    assert [x["id"] for x in cmmtn["late_submissions"]] == [late.id]

    event = session.exec(
        select(AuditEvent).where(
            AuditEvent.kind == "submission", AuditEvent.item_id == late.id, AuditEvent.trigger == "receive"
        )
    ).one()
    assert event.data["params"]["lateness"]["working_days_late"] == 1

    # Accepted months later, viewed as of a later date: the record has not moved.
    engine.fire(
        session,
        "submission",
        late.id,
        "accept",
        principal=person("nm", "network-manager"),
        clock=FixedClock(date(2027, 9, 1)),
    )
    session.commit()
    later = next(
        n for n in _peerwatch("--as-of", "2027-12-01", "cycle", "status")["networks"] if n["network"] == "CMMTN"
    )
    assert [(x["id"], x["state"], x["days_late"], x["working_days_late"]) for x in later["late_submissions"]] == [
        (late.id, "accepted", 1, 1)
    ]
    assert session.exec(select(func.count()).select_from(Lateness)).one() == 2


def test_lateness_counts_working_days_over_a_bank_holiday_and_the_deadline_in_force(
    db: Engine, session: Session, services: dict[str, int], tmp_path: Path
) -> None:
    """Due Fri 24 Dec 2027... received Tue 4 Jan 2028: 11 calendar days, 4 working days (27, 28
    Dec and 3 Jan are bank holidays in England; 29, 30, 31 Dec and 4 Jan count). An extended
    deadline is the one compared with."""
    _plan(session, "CMMTN", 2027, date(2027, 4, 1))
    run_sweep(db, FixedClock(date(2027, 4, 1)))
    sub = session.exec(select(Submission).where(Submission.programme_year == 2027).order_by(col(Submission.id))).first()
    assert sub is not None
    f = tmp_path / "work-plan.docx"
    f.write_bytes(b"v1")
    engine.fire(
        session,
        "submission",
        sub.id,
        "receive",
        principal=person("office", OFFICE),
        clock=FixedClock(date(2027, 6, 1)),
        params={"file": str(f)},
    )
    engine.fire(
        session,
        "submission",
        sub.id,
        "request_more_information",
        principal=person("nm", "network-manager"),
        clock=FixedClock(date(2027, 12, 10)),
        note="No actions answering recommendation 3",
    )
    session.commit()
    (d,) = engine.pending_deadlines(session, "submission", sub.id)
    assert d.due_on == date(2027, 12, 24)  # 10 working days
    engine.fire(
        session,
        "submission",
        sub.id,
        "receive",
        principal=person("office", OFFICE),
        clock=FixedClock(date(2028, 1, 4)),
        params={"file": str(f)},
    )
    session.commit()
    from states.machines.lateness import for_item

    first, second = for_item(session, "submission", sub.id)
    assert (first["late"], first["days_late"]) == (False, 0)
    assert (second["deadline"], second["due_on"], second["days_late"], second["working_days_late"]) == (
        "more_information_due",
        "2027-12-24",
        11,
        4,
    )
