"""What ``peerwatch demo`` shows at the end (items, letters, deadlines, the report PDF, programme
cycles), and who each escalation letter went to, read back from the outbox rows."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from cli.output import console, table
from models import Appeal, Complaint, Contact, Deadline, Network, Organisation, OutboxMessage, Report, Risk, Visit
from models.portal import ActionPlan
from notifications.documents import render_report_pdf
from states.calendar import calendar_for
from states.engine import pending_deadlines
from states.machines.report import document
from states.roles import CONTACT_ROLES
from states.services.cycle import status as cycle_status

ESCALATION_LETTERS = (
    "escalation",
    "tpd_ra",
    "asct_notice",
    "inadequate_response",
    "achievement_escalation",
    "perinatal_escalation",
    "perinatal_regional_referral",
)


def last_letter_id(s: Session) -> int:
    return int(s.exec(select(func.max(OutboxMessage.id))).one() or 0)  # type: ignore[arg-type]


def escalations_since(
    s: Session, after_id: int, kind: str | None = None, item_id: int | None = None
) -> dict[tuple[str, int], str]:
    """Who each escalation letter written after outbox row ``after_id`` goes to, per item, from the
    outbox rows themselves: "Commissioning Lead Dr Liam Byrne (West Midlands Trauma Network); ...".
    A role nobody holds is named as such (the row is an undeliverable incident)."""
    q = select(OutboxMessage).where(OutboxMessage.id > after_id, col(OutboxMessage.template).in_(ESCALATION_LETTERS))  # type: ignore[operator]
    if kind is not None:
        q = q.where(OutboxMessage.kind == kind, OutboxMessage.item_id == item_id)
    rows = list(s.exec(q.order_by(OutboxMessage.id)))  # type: ignore[arg-type]
    emails = {p["email"].lower() for m in rows for p in m.to}
    where: dict[tuple[str, str], str] = {}
    if emails:
        orgs = {o.id: o.name for o in s.exec(select(Organisation))}
        nets = {n.id: n.name for n in s.exec(select(Network))}
        for c in s.exec(select(Contact).where(col(Contact.email).in_(emails))):
            where[(c.email.lower(), c.role)] = (
                (orgs.get(c.organisation_id) if c.organisation_id else None)
                or (  # type: ignore[arg-type]
                    nets.get(c.network_id) if c.network_id else None
                )
                or "national"
            )  # type: ignore[arg-type]
    out: dict[tuple[str, int], list[str]] = {}
    for m in rows:
        said = out.setdefault((m.kind, m.item_id), [])
        for p in m.to:
            text = f"{p['role_name'] or p['role'] or 'named person'} {p['name']} ({where.get((p['email'].lower(), p['role']), p['email'])})"
            if text not in said:
                said.append(text)
        if m.category == "incident":
            role = m.idempotency_key.rsplit(":", 1)[-1]
            said.append(f"no {CONTACT_ROLES.get(role, role)} on file (an incident)")
    return {k: "wrote to " + "; ".join(v) for k, v in out.items() if v}


def print_summary(
    db: Any, db_path: Path, outbox: Path, api: str, keep_server: bool, ids: dict[str, int], end: date
) -> None:
    """The tables and pointers printed after the story; files go beside the database (var/demo)."""
    var = db_path.parent

    def due(s: Session, kind: str, item_id: int) -> str:
        return ", ".join(f"{d.name} {d.due_on:%a %d %b %Y}" for d in pending_deadlines(s, kind, item_id))

    with Session(db) as s:
        rows = [("risk", r, f"{r.level}-{r.id}", r.title) for r in s.exec(select(Risk).order_by(Risk.id))]  # type: ignore[arg-type]
        rows += [("visit", v, f"Visit-{v.id}", f"visit on {v.visit_date:%a %d %b %Y}") for v in s.exec(select(Visit))]
        rows += [
            (
                "report",
                r,
                f"Report-{r.id}",
                f"report issue {r.issue}, published {r.published_on:%a %d %b %Y}" if r.published_on else "report",
            )
            for r in s.exec(select(Report))
        ]
        rows += [("appeal", a, f"Appeal-{a.id}", f"appeal, {a.outcome or 'undecided'}") for a in s.exec(select(Appeal))]
        rows += [
            ("complaint", c, f"Complaint-{c.id}", f"complaint ({c.category}), owner {c.owner_role}")
            for c in s.exec(select(Complaint))
        ]
        rows += [("action_plan", p, f"Plan-{p.id}", p.title) for p in s.exec(select(ActionPlan))]
        table(
            "Items by state",
            ["item", "what", "state", "pending deadlines"],
            [(label, what, row.state, due(s, kind, row.id)) for kind, row, label, what in rows],
        )
        letters = list(s.exec(select(OutboxMessage).order_by(OutboxMessage.id)))  # type: ignore[arg-type]
        counts: Counter[tuple[str, str, str]] = Counter()
        for m in letters:
            for p in m.to:
                counts[(m.template, p["role_name"] or "reviewer", m.status)] += 1
            if not m.to:
                counts[(m.template, "(nobody: incident)", m.status)] += 1
        table(
            f"Letters by kind and recipient ({len(letters)} messages)",
            ["letter", "to (role)", "status", "count"],
            [(t, r, st, n) for (t, r, st), n in sorted(counts.items())],
        )
        labels = {(kind, row.id): label for kind, row, label, _ in rows}
        done = list(s.exec(select(Deadline).order_by(Deadline.id)))  # type: ignore[arg-type]
        table(
            "Deadlines (working days, England bank holidays incl. 25, 28 Dec and 1 Jan; weeks as 7 days)",
            ["item", "deadline", "due", "status"],
            [
                (
                    labels.get((d.kind, d.item_id), f"{d.kind}-{d.item_id}"),
                    d.name,
                    d.due_on.strftime("%a %d %b %Y"),
                    d.status,
                )
                for d in done
            ],
        )
        report = s.get(Report, ids["report"])
        pdf = var / f"report-{ids['report']}.pdf"
        pdf.write_bytes(render_report_pdf(document(s, report)))  # type: ignore[arg-type]
        table(
            f"Programme cycles on {end:%a %d %b %Y} (peerwatch cycle status), side by side",
            ["network", "programme", "year", "year of cycle", "quarter", "current phases"],
            [
                (
                    r["network"],
                    r["programme"],
                    r["programme_year"],
                    f"{r['cycle_year']} of {r['cycle_years']}",
                    r["quarter"],
                    "; ".join(r["phases"]),
                )
                for r in cycle_status(s, end)
            ],
        )
    cal = calendar_for("ENG")
    console.print(
        f"Check: 10 working days after Fri 18 Dec 2026 is {cal.add_working_days(date(2026, 12, 18), 10):%a %d %b %Y}; "
        f"8 weeks after Fri 11 Dec 2026 is {cal.add_weeks(date(2026, 12, 11), 8):%a %d %b %Y}."
    )
    eml = sorted(outbox.glob("*.eml"))
    console.print(f"\nLetters: {len(eml)} .eml files in {outbox.resolve()}")
    console.print(f"Report PDF: {pdf.resolve()}")
    console.print(
        f"Dashboard: {(var / 'site' / 'index.html').resolve()}  (or serve it: .venv/bin/peerwatch dashboard --out var/demo/site --serve)"
    )
    console.print(
        f"Calendar feeds: {(var / 'site').resolve()}/<network>/calendar.ics (import into Outlook or any calendar)"
    )
    console.print(f"Database: {db_path.resolve()}")
    console.print("Explore it, e.g.:")
    console.print(f"  export PEERWATCH_DATABASE_URL=sqlite:///{db_path.resolve()}")
    console.print("  .venv/bin/peerwatch risk list")
    console.print(
        "  .venv/bin/peerwatch user list   # the cast: a training database, so --as EMAIL acts as one of them"
    )
    console.print(f"  .venv/bin/peerwatch risk history {ids['SC-mersey']}")
    console.print(
        f"  .venv/bin/peerwatch visit show {ids['visit']}; .venv/bin/peerwatch visit agenda {ids['visit']} --ics var/demo/visit.ics"
    )
    console.print(
        f"  .venv/bin/peerwatch report history {ids['report']}; .venv/bin/peerwatch report render {ids['report']}"
    )
    console.print(
        f"  .venv/bin/peerwatch appeal history {ids['appeal']}; .venv/bin/peerwatch risk history {ids['SC-midland']}"
    )
    if keep_server:
        console.print(f"Prefect UI (runs and artifacts): {api.removesuffix('/api')}  (server left running)")
    else:
        console.print("Prefect runs are kept in var/prefect: `make ui` opens them at http://127.0.0.1:4200")
