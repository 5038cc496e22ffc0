"""``peerwatch demo``: a fresh demo database, sample risks raised on visit dates, and the real
Prefect ``chase`` and ``dispatch`` flows run day by day over simulated dates.

The story (West Midlands and Cheshire & Mersey, winter 2026-27):
- IR at Midland Royal MTC, visit Fri 11 Dec: notified Fri 18 Dec, answered adequately.
- SC at Severnside Trauma Unit, visit Thu 10 Dec: notified Thu 17 Dec, never answered:
  reminded, chased, then escalated to the Commissioning Lead and the CQC.
- SC at Mersey Harbour MTC, visit Fri 11 Dec, affects doctors in training, scored 16:
  the ASCT is told; the response is inadequate twice: Commissioning Lead, CQC, TPD and RA.
- GC at Midland Royal MTC: into the work programme, monitored quarterly.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from cli.output import console, table
from flows.server import local_server, quiet_env

VAR = Path("var") / "demo"
START, END = date(2026, 12, 10), date(2027, 1, 29)

# day -> [(risk label, trigger, actor, role, note)]
SCRIPT: dict[date, list[tuple[str, str, str, str, str | None]]] = {
    date(2026, 12, 17): [("SC-severnside", "send_formal_notification", "network manager", "network-manager", "letter emailed")],
    date(2026, 12, 18): [("IR-midland", "send_formal_notification", "network manager", "network-manager", "letter emailed"),
                         ("SC-mersey", "send_formal_notification", "regional lead", "regional-lead", "letter emailed")],
    date(2027, 1, 5): [("IR-midland", "response_adequate", "network manager", "network-manager", "interim rota in place; action plan with milestones received")],
    date(2027, 1, 14): [("SC-mersey", "response_inadequate", "network manager", "network-manager", "no interim supervision arrangements; no milestones")],
    date(2027, 1, 26): [("SC-mersey", "response_inadequate", "regional lead", "regional-lead", "further response repeats the first; continued inadequate response")],
}


def _weekdays(start: date, end: date) -> list[date]:
    days, d = [], start
    while d <= end:
        if d.weekday() < 5:
            days.append(d)
        d += timedelta(days=1)
    return days


def run_demo(keep_server: bool = False) -> None:
    if VAR.exists():
        shutil.rmtree(VAR)
    VAR.mkdir(parents=True)
    db_path, outbox = VAR / "peerwatch.db", VAR / "outbox"
    os.environ.update({"PEERWATCH_DATABASE_URL": f"sqlite:///{db_path}", "PEERWATCH_MAIL": "folder",
                       "PEERWATCH_OUTBOX_DIR": str(outbox)})
    home = Path("var") / "prefect"
    os.environ.update(quiet_env(home))
    console.print("[bold]peerwatch demo[/bold]: starting a local Prefect server (var/prefect) ...")
    with local_server(home, VAR / "prefect-server.log", keep=keep_server) as api:
        os.environ["PREFECT_API_URL"] = api
        _story(db_path, outbox, api, keep_server)


def _story(db_path: Path, outbox: Path, api: str, keep_server: bool) -> None:
    from flows.chase import chase
    from flows.dispatch import dispatch
    from models import OutboxMessage, Risk, init_db, session_scope
    from cli.seed import seed_reference
    from states import engine
    from states.clock import FixedClock

    db = init_db()
    with session_scope() as s:
        svc = seed_reference(s)
    clock = FixedClock(START)
    raised = [
        ("SC-severnside", date(2026, 12, 10), "Severnside Trauma Unit", "SC", "No rehabilitation prescription completed for major trauma patients", "TU-14", None, None, False),
        ("IR-midland", date(2026, 12, 11), "Midland Royal Major Trauma Centre", "IR", "Trauma team not consultant-led out of hours", "MTC-3", 5, 3, False),
        ("GC-midland", date(2026, 12, 11), "Midland Royal Major Trauma Centre", "GC", "Patient information leaflets out of date", "MTC-27", None, None, False),
        ("SC-mersey", date(2026, 12, 11), "Mersey Harbour Major Trauma Centre", "SC", "Junior doctors unsupervised in resus overnight", "MTC-8", 4, 4, True),
    ]
    ids: dict[str, int] = {}
    timeline: list[tuple[date, str, str]] = []
    for day in _weekdays(START, END):
        clock.set(day)
        for label, visit, service, level, title, ref, impact, likelihood, dit in raised:
            if visit == day:
                with session_scope() as s:
                    out = engine.create(s, "risk", Risk(service_id=svc[service], level=level, title=title, standard_ref=ref,
                                        identified_on=visit, visit_date=visit, impact=impact, likelihood=likelihood,
                                        doctors_in_training=dit, state="new"),
                                        "raise", actor="peer review panel lead", role="network-manager", clock=clock,
                                        note="found at the visit; verbal notification at high level feedback")
                    ids[label] = out.row.id  # type: ignore[assignment]
                    timeline.append((day, f"{level}-{out.row.id}", f"raised at visit -> {out.row.state} {_due(out.event.data)}"))
        for label, trigger, actor, role, note in SCRIPT.get(day, []):
            with session_scope() as s:
                out = engine.fire(s, "risk", ids[label], trigger, actor=actor, role=role, clock=clock, note=note)
                timeline.append((day, f"{out.row.level}-{out.row.id}", f"{trigger} -> {out.row.state} {_due(out.event.data)}"))  # type: ignore[attr-defined]
        result = chase(as_of=day.isoformat())
        for kind, n in sorted(result["counts"].items()):
            timeline.append((day, "sweep", f"chase flow: {n} x {kind}"))
        with Session(db) as s:
            queued = s.exec(select(OutboxMessage.id).where(OutboxMessage.status == "queued")).first()
        if queued:  # the dispatcher runs only when there is something to send
            dispatch(as_of=day.isoformat())

    table("What happened (simulated weekdays; the chase and dispatch flows ran each day)", ["date", "item", "event"],
          [(d.strftime("%a %d %b %Y"), item, what) for d, item, what in timeline])
    _report(db, db_path, outbox, api, keep_server)


def _due(data: dict[str, Any]) -> str:
    dl = data.get("deadlines") or {}
    return ", ".join(f"({k} due {date.fromisoformat(v).strftime('%a %d %b %Y')})" for k, v in dl.items())


def _report(db: Any, db_path: Path, outbox: Path, api: str, keep_server: bool) -> None:
    from models import Deadline, OutboxMessage, Risk
    from states.calendar import calendar_for
    from states.engine import pending_deadlines

    with Session(db) as s:
        risks = list(s.exec(select(Risk).order_by(Risk.id)))  # type: ignore[arg-type]
        table("Items by state", ["item", "title", "state", "pending deadlines"],
              [(f"{r.level}-{r.id}", r.title, r.state, ", ".join(f"{d.name} {d.due_on:%a %d %b %Y}" for d in pending_deadlines(s, "risk", r.id)))
               for r in risks])
        letters = list(s.exec(select(OutboxMessage).order_by(OutboxMessage.id)))  # type: ignore[arg-type]
        counts: Counter[tuple[str, str, str]] = Counter()
        for m in letters:
            for p in m.to:
                counts[(m.template, p["role_name"], m.status)] += 1
        table(f"Letters by kind and recipient ({len(letters)} messages)", ["letter", "to (role)", "status", "count"],
              [(t, r, st, n) for (t, r, st), n in sorted(counts.items())])
        done = list(s.exec(select(Deadline).order_by(Deadline.item_id, Deadline.id)))  # type: ignore[arg-type]
        by_id = {r.id: r for r in risks}
        table("Deadlines (working days, England bank holidays incl. 25, 28 Dec and 1 Jan)", ["item", "deadline", "due", "status"],
              [(f"{by_id[d.item_id].level}-{d.item_id}", d.name, d.due_on.strftime("%a %d %b %Y"), d.status) for d in done])
    cal = calendar_for("ENG")
    console.print(f"Check: 10 working days after Fri 18 Dec 2026 is {cal.add_working_days(date(2026, 12, 18), 10):%a %d %b %Y}.")
    eml = sorted(outbox.glob("*.eml"))
    console.print(f"\nLetters: {len(eml)} .eml files in {outbox.resolve()}")
    console.print(f"Database: {db_path.resolve()}")
    console.print("Explore it, e.g.:")
    console.print(f"  export PEERWATCH_DATABASE_URL=sqlite:///{db_path.resolve()}")
    console.print("  .venv/bin/peerwatch risk list")
    console.print("  .venv/bin/peerwatch risk history 4")
    if keep_server:
        console.print(f"Prefect UI (runs and artifacts): {api.removesuffix('/api')}  (server left running)")
    else:
        console.print("Prefect runs are kept in var/prefect: `make ui` opens them at http://127.0.0.1:4200")
