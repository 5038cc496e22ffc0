"""The Network Manager's dashboard (issue 7 item 2): the read model in ``states/views/register.py``
against items moved by the engine and the sweep, the ``peerwatch dashboard`` command end to
end, and the written page rendered by headless Chromium (the figures are filled in by its JS)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from flows.site import write_site
from models import AuditEvent, Contact, Deadline, Network, Report, Risk, Service
from models.selfassessment import SelfAssessment
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock, local_date
from states.engine.sweep import run_sweep
from states.machines.risk import FORMAL_NOTIFICATION_WORKING_DAYS
from states.machines.spec import get_spec
from states.machines.standards import standards_of
from states.policy import Policy
from states.roles import SYSTEM_ACTOR
from states.services.selfassessment import start
from states.services.standards import load_standard_sets, read_library
from states.views import register

ROOT = Path(__file__).resolve().parents[1]
CAL = calendar_for("ENG")
D0 = date(2026, 12, 11)  # Fri: the visits, the risks raised
TODAY = date(2027, 2, 15)  # Mon: the morning the Network Manager opens the dashboard
MRH, STU, BURNS = "Midland Royal Major Trauma Centre", "Severnside Trauma Unit", "Valley Burns Service"
MERSEY, ACC = "Mersey Harbour Major Trauma Centre", "Severnside Adult Critical Care"
NM, OFFICE = "network-manager", "network-office"


@dataclass
class World:
    sc: int  # WMTN, notified, never answered: chased, then escalated by the sweep
    ir: int  # WMTN, formal notification never sent: overdue (its overdue letter went)
    gc: int  # WMTN, in the work programme
    withdrawn: int  # WMTN, withdrawn: not open
    mersey_sc: int  # CMMTN, notified last week: its response falls due soon
    report: int  # CMMTN, approved: Met, Partially Met, Unmet
    assessment: int  # WMACC, validated self-assessment


def _raise(s: Session, services: dict[str, int], level: str, service: str, day: date) -> int:
    row = Risk(
        service_id=services[service],
        level=level,
        title=f"{level} at {service}",
        identified_on=day,
        visit_date=day,
        state="new",
    )
    return engine.create(s, "risk", row, "raise", actor="panel lead", role=NM, clock=FixedClock(day)).row.id  # type: ignore[return-value]


def _fire(s: Session, kind: str, item_id: int, trigger: str, day: date, role: str = NM, **kw: Any) -> None:
    engine.fire(
        s,
        kind,
        item_id,
        trigger,
        actor="Nina NM" if role == NM else "Jo Office",
        role=role,
        clock=FixedClock(day),
        **kw,
    )


def _approved_report(s: Session, services: dict[str, int]) -> int:
    row = Report(service_id=services[MERSEY], basis_date=D0, state="new")
    rid: int = engine.create(
        s, "report", row, "start_drafting", actor="Jo Office", role=OFFICE, clock=FixedClock(D0)
    ).row.id  # type: ignore[assignment]
    for ref, status in (("1.1", "Met"), ("1.2", "Partially Met"), ("1.3", "Unmet"), ("1.4", "Not applicable")):
        _fire(s, "report", rid, "add_standard", D0, role=OFFICE, params={"ref": ref, "status": status})
    _fire(s, "report", rid, "send_for_accuracy_check", D0, role=OFFICE)
    _fire(s, "report", rid, "approve", D0 + timedelta(days=3))
    return rid


def _validated_assessment(s: Session, services: dict[str, int]) -> int:
    """A declaration circulated, returned (one standard Met, the rest Unmet) and accepted as declared."""
    load_standard_sets(
        s, read_library(ROOT / "docs" / "standards-example.yaml"), actor="Jo Office", role=OFFICE, clock=FixedClock(D0)
    )
    row: SelfAssessment = start(s, services[ACC], 2026, actor="Jo Office", role=OFFICE, clock=FixedClock(D0)).row
    rows = []
    for n, std in enumerate(standards_of(s, row.standard_set_id)):
        met = n == 0
        figure = (std.met_threshold if met else 0.0) if std.has_thresholds else None
        rows.append(
            {
                "row": n + 2,
                "ref": std.ref,
                "status": None if std.has_thresholds else ("Met" if met else "Unmet"),
                "figure": figure,
                "comments": "",
                "evidence": "work plan",
            }
        )
    _fire(s, "selfassessment", row.id, "receive", D0, role=OFFICE, params={"filename": "return.xlsx", "rows": rows})  # type: ignore[arg-type]
    _fire(s, "selfassessment", row.id, "accept_all", D0, role=OFFICE)  # type: ignore[arg-type]
    return row.id  # type: ignore[return-value]


def build(db: Engine, s: Session, services: dict[str, int]) -> World:
    """The items, then a sweep every working day from the visit to TODAY, staff acting on the way."""
    sc, ir, gc, gone = (
        _raise(s, services, lvl, svc, D0) for lvl, svc in (("SC", MRH), ("IR", STU), ("GC", BURNS), ("GC", BURNS))
    )
    _fire(s, "risk", sc, "send_formal_notification", D0 + timedelta(days=3))
    _fire(s, "risk", gone, "withdraw", D0 + timedelta(days=3), note="raised in error")
    report, assessment = _approved_report(s, services), _validated_assessment(s, services)
    s.commit()
    mersey = 0
    day = D0
    while day <= TODAY:
        if day == TODAY - timedelta(days=5):
            mersey = _raise(s, services, "SC", MERSEY, day)
            _fire(s, "risk", mersey, "send_formal_notification", day + timedelta(days=1))
            s.commit()
        if CAL.is_working_day(day):
            run_sweep(db, FixedClock(day))
        day += timedelta(days=1)
    s.expire_all()
    return World(sc, ir, gc, gone, mersey, report, assessment)


@pytest.fixture
def world(db: Engine, session: Session, services: dict[str, int]) -> World:
    return build(db, session, services)


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

    _fire(s, "risk", world.ir, "send_formal_notification", TODAY)  # the letter goes at last
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


# ---------------------------------------------------------------- (b) the command end to end


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PEERWATCH_AS_OF", "COLUMNS", "LINES")}
    return subprocess.run(
        [sys.executable, "-c", "from cli.main import main; main()", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dashboard_command_writes_a_page_per_network_matching_risk_list(
    session: Session, world: World, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    proc = _cli("--json", "--as-of", TODAY.isoformat(), "dashboard", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    pages = {p["network"]: p for p in json.loads(proc.stdout)["networks"]}
    codes = set(session.exec(select(Network.code)))
    assert set(pages) == codes
    index = (out / "index.html").read_text()
    assert all(f'href="{c}/index.html"' in index for c in codes)

    listed = _cli("--json", "risk", "list")
    assert listed.returncode == 0, listed.stderr
    risks = json.loads(listed.stdout)
    terminal = get_spec("risk").terminal
    for code in codes:
        in_net = set(
            session.exec(select(Service.id).join(Network, Network.id == Service.network_id).where(Network.code == code))
        )
        listed_open = {r["id"]: r for r in risks if r["service_id"] in in_net and r["state"] not in terminal}
        reg = {r["id"]: r for r in register.risk_register(session, TODAY, code)}
        assert pages[code]["open_risks"] == len(listed_open) == len(reg)
        assert {i: (r["state"], r["level"]) for i, r in listed_open.items()} == {
            i: (r["state"], r["level"]) for i, r in reg.items()
        }
        assert all(reg[i]["due_on"] == r["due_on"] for i, r in listed_open.items() if r["due_on"])
        figures = register.summary(session, TODAY, code)["figures"]
        assert {k: pages[code][k] for k in figures} == figures
        page = (out / code / "index.html").read_text()
        assert 'href="calendar.ics"' in page and '<script type="application/json" id="data">' in page

    refused = _cli("dashboard", "--network", "NOPE", "--out", str(out))
    assert (refused.returncode, refused.stderr.strip()) == (
        2,
        "error: network 'NOPE' not found (peerwatch network list)",
    )


# ---------------------------------------------------------------- (c) the page in a real browser

FIGURES = {
    "open-items": "open_items",
    "open-risks": "open_risks",
    "overdue-count": "overdue",
    "upcoming-count": "upcoming",
    "escalations-count": "escalations",
}
CHARTS = ("chart-states", "chart-ages", "chart-compliance")


class _Page(HTMLParser):
    """The figures' text and the bars drawn in each chart (a chart's div holds only its SVG)."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.bars: dict[str, int] = dict.fromkeys(CHARTS, 0)
        self.svgs: dict[str, int] = dict.fromkeys(CHARTS, 0)
        self._figure: str | None = None
        self._chart: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id") in FIGURES:
            self._figure = a["id"]
            self.figures[self._figure] = ""  # type: ignore[index]
        elif tag == "div" and a.get("id") in CHARTS:
            self._chart = a["id"]
        elif self._chart and tag == "svg":
            self.svgs[self._chart] += 1
        elif self._chart and tag == "rect" and "bar" in (a.get("class") or "").split():
            self.bars[self._chart] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "span":
            self._figure = None
        elif tag == "div":
            self._chart = None

    def handle_data(self, data: str) -> None:
        if self._figure:
            self.figures[self._figure] += data


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("PEERWATCH_REQUIRE_CHROMIUM") == "1":
            pytest.fail("PEERWATCH_REQUIRE_CHROMIUM=1 but neither chromium nor chromium-browser is on PATH")
        pytest.skip("headless Chromium not installed (Debian: apt-get install chromium)")
    return found


def _dump_dom(browser: str, page: Path, profile: Path) -> str:
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-extensions",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "</html>" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


def test_page_renders_its_figures_and_charts_in_headless_chromium(
    session: Session, world: World, tmp_path: Path
) -> None:
    browser = _chromium()
    networks = [(n.code, n.name) for n in session.exec(select(Network).order_by(col(Network.code)))]
    write_site(session, TODAY, tmp_path / "site", networks)
    for code, _ in networks:
        page = tmp_path / "site" / code / "index.html"
        static = _Page()
        static.feed(page.read_text())
        assert set(static.figures.values()) == {""} and sum(static.bars.values()) == 0  # only the JS fills them in
        data = register.summary(session, TODAY, code)
        seen = _Page()
        seen.feed(_dump_dom(browser, page, tmp_path / f"profile-{code}"))
        assert seen.figures == {i: str(data["figures"][k]) for i, k in FIGURES.items()}, code
        assert seen.svgs == dict.fromkeys(CHARTS, 1)
        assert seen.bars == {
            "chart-states": len(data["open_by_state"]),
            "chart-ages": len(register.AGE_BUCKETS),
            "chart-compliance": len(data["compliance"]),
        }, code
    assert data["figures"]["open_risks"] >= 1 and any(
        len(register.summary(session, TODAY, c)["compliance"]) for c, _ in networks
    )


def test_long_tables_are_cut_but_the_figures_count_every_row(
    session: Session,
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A network with more open risks than a page lists: the table stops at ROWS_SHOWN and
    says so; the headline figures still count them all."""
    import notifications.dashboard as page_renderer

    networks = [(n.code, n.name) for n in session.exec(select(Network).order_by(col(Network.code)))]
    busiest = max(networks, key=lambda n: len(register.risk_register(session, TODAY, n[0])))
    total = len(register.risk_register(session, TODAY, busiest[0]))
    assert total >= 2
    monkeypatch.setattr(page_renderer, "ROWS_SHOWN", 1)
    (page,) = write_site(session, TODAY, tmp_path / "site", [busiest])
    html = Path(page["page"]).read_text()
    assert page["open_risks"] == total
    assert f"Showing the first 1 of {total}" in html
    register_table = html.split('id="register"')[1].split("</table>")[0]
    assert register_table.count("<tr") == 2  # the header and one row


# ---------------------------------------------------------------- received late (issue 12 item 12)


def test_late_returns_and_replies_are_recorded_at_receipt_and_shown_on_the_dashboard(
    db: Engine, session: Session, services: dict[str, int], tmp_path: Path, prefect_harness: None
) -> None:
    """A factual-accuracy reply due Tue 29 Dec 2026 (10 working days from Fri 11 Dec, skipping
    25 and 28 December) received Mon 4 Jan 2027: 6 calendar days, 3 working days late (1 January
    does not count). A self-assessment return due Fri 22 Jan 2027 (6 weeks) received Mon 25 Jan:
    3 calendar days, 1 working day. An on-time reply is recorded as on time and not listed.
    The numbers are those stored at receipt: `report show`, the dashboard page (html5lib) and
    the `late-receipts` artifact all show them, and a later as-of date does not change them."""
    from flows.artifacts import publish_late
    from states.machines.lateness import for_item, received_late
    from states.services.items import item_json

    s = session
    late_report = engine.create(
        s,
        "report",
        Report(service_id=services[MERSEY], basis_date=D0, state="new"),
        "start_drafting",
        actor="Jo Office",
        role=OFFICE,
        clock=FixedClock(D0),
    ).row.id
    _fire(s, "report", late_report, "send_for_accuracy_check", D0, role=OFFICE)
    on_time = engine.create(
        s,
        "report",
        Report(service_id=services[MRH], basis_date=D0, state="new"),
        "start_drafting",
        actor="Jo Office",
        role=OFFICE,
        clock=FixedClock(D0),
    ).row.id
    _fire(s, "report", on_time, "send_for_accuracy_check", D0, role=OFFICE)
    assert {d.name: d.due_on for d in engine.pending_deadlines(s, "report", late_report)}["accuracy_reply"] == date(
        2026, 12, 29
    )
    _fire(s, "report", on_time, "approve", date(2026, 12, 29))  # no inaccuracies: the reply on its due date
    _fire(
        s,
        "report",
        late_report,
        "record_inaccuracy",
        date(2027, 1, 4),
        role=OFFICE,
        params={"text": "two consultants, not one"},
    )

    load_standard_sets(
        s, read_library(ROOT / "docs" / "standards-example.yaml"), actor="Jo Office", role=OFFICE, clock=FixedClock(D0)
    )
    sa: SelfAssessment = start(s, services[ACC], 2026, actor="Jo Office", role=OFFICE, clock=FixedClock(D0)).row
    assert {d.name: d.due_on for d in engine.pending_deadlines(s, "selfassessment", sa.id)}["return"] == date(
        2027, 1, 22
    )  # type: ignore[arg-type]
    rows = [
        {
            "row": n + 2,
            "ref": std.ref,
            "status": None if std.has_thresholds else "Met",
            "figure": std.met_threshold if std.has_thresholds else None,
            "comments": "",
            "evidence": "work plan",
        }
        for n, std in enumerate(standards_of(s, sa.standard_set_id))
    ]
    _fire(
        s,
        "selfassessment",
        sa.id,
        "receive",
        date(2027, 1, 25),
        role=OFFICE,
        params={"filename": "return.xlsx", "rows": rows},
    )  # type: ignore[arg-type]
    s.commit()

    assert [
        (x["what"], x["due_on"], x["received_on"], x["days_late"], x["working_days_late"])
        for x in for_item(s, "report", late_report)
    ] == [("factual accuracy reply", "2026-12-29", "2027-01-04", 6, 3)]
    assert [(x["late"], x["days_late"]) for x in for_item(s, "report", on_time)] == [(False, 0)]
    shown = item_json(s, "selfassessment", s.get(SelfAssessment, sa.id))
    assert (shown["late"], shown["days_late"], shown["working_days_late"]) == (True, 3, 1)

    late = received_late(s)
    assert [(x["kind"], x["id"], x["working_days_late"], x["network"]) for x in late] == [
        ("selfassessment", sa.id, 1, "WMACC"),
        ("report", late_report, 3, "CMMTN"),
    ]  # newest first

    # The dashboard, written months later: the same figures.
    later = date(2027, 6, 1)
    networks = [(n.code, n.name) for n in s.exec(select(Network).order_by(Network.code))]
    write_site(s, later, tmp_path / "site", networks)
    for code, expect in (
        (
            "CMMTN",
            [
                [
                    "Mon 04 Jan 2027",
                    "Tue 29 Dec 2026",
                    "3",
                    "6",
                    "factual accuracy reply",
                    f"report {late_report}",
                    MERSEY,
                ]
            ],
        ),
        (
            "WMACC",
            [
                [
                    "Mon 25 Jan 2027",
                    "Fri 22 Jan 2027",
                    "1",
                    "3",
                    "self-assessment return 2026-27",
                    f"selfassessment {sa.id}",
                    ACC,
                ]
            ],
        ),
        ("WMTN", []),
    ):
        page = _LateRows()
        page.feed((tmp_path / "site" / code / "index.html").read_text(encoding="utf-8"))
        assert page.heading == "Received late"
        got = page.rows
        assert got == expect, code

    # The artifact, through a real Prefect API.
    from prefect import flow

    @flow(name="late-receipts-test")
    def publish() -> str:
        return publish_late(s, later)

    state = publish(return_state=True)
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    (artifact,) = [a for a in found if a.key == "late-receipts"]
    table = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert [(r["item"], r["working days late"], r["calendar days late"]) for r in table] == [
        (f"selfassessment {sa.id}", 1, 3),
        (f"report {late_report}", 3, 6),
    ]
    assert artifact.description


class _LateRows(HTMLParser):
    """The page's "Received late" heading and the cells of its rows (tr class="late")."""

    def __init__(self) -> None:
        super().__init__()
        self.heading, self.rows = "", []  # type: str, list[list[str]]
        self._in_heading = self._in_row = self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "h2" and a.get("id") == "late":
            self._in_heading = True
        elif tag == "tr" and a.get("class") == "late":
            self._in_row = True
            self.rows.append([])
        elif tag == "td" and self._in_row:
            self._in_cell = True
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_heading = False
        elif tag == "tr":
            self._in_row = False
        elif tag == "td":
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_heading:
            self.heading += data
        elif self._in_cell:
            self.rows[-1][-1] += data.strip()
