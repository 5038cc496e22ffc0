"""``peerwatch cycle``: where every network is in its programme; plan a programme year."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlmodel import Session

from cli.context import ROLE, of
from cli.output import console, print_json, table
from models import session_scope
from states.clock import local_date
from states.programmes import programme_year_of
from states.services.cycle import plan_year
from states.services.cycle import status as cycle_status
from states.services.cycle_quarters import set_phase_quarter
from states.views.directory import network_by_code, networks_or_one
from states.views.quarters import placements

NAME = "cycle"
app = typer.Typer(
    help="Programme cycles: annual (West Midlands) and biennial (Cheshire & Mersey).", no_args_is_help=True
)


@app.command("status")
def status(ctx: typer.Context) -> None:
    """Each network's programme year, year 1 or 2, quarter, current phases and what is outstanding."""
    run = of(ctx)
    day = run.today()
    with Session(run.db()) as s:
        rows = cycle_status(s, day)
    if run.json:
        print_json({"as_of": day, "networks": rows})
        return
    table(
        f"Programme cycles as of {day:%a %d %b %Y}, side by side",
        [
            "network",
            "cycle",
            "programme year",
            "year of cycle",
            "quarter",
            "overdue phases",
            "outstanding documents",
            "received late",
            "carried forward",
        ],
        [
            (
                r["network"],
                r["cycle"],
                r["programme_year"],
                f"{r['cycle_year']} of {r['cycle_years']}",
                r["quarter"],
                len(r["overdue_phases"]),
                len(r["outstanding_submissions"]),
                len(r["late_submissions"]),
                len(r["carried_forward"]),
            )
            for r in rows
        ],
    )
    for r in rows:
        console.print(
            f"\n[bold]{r['network']}[/bold] {r['programme']}, {r['programme_year']}, year {r['cycle_year']} of {r['cycle_years']}, {r['quarter']}"
        )
        console.print(f"  {r['quarters']}", markup=False)
        for p in r["phases"]:
            console.print(f"  now: {p}", markup=False)
        for p in r["overdue_phases"]:
            console.print(f"  overdue: {p}", markup=False)
        for x in r["outstanding_submissions"]:
            console.print(
                f"  outstanding: {x['organisation']} {x['doc_type'].replace('_', ' ')} ({x['state']}, due {x['due_on']}"
                f"{', overdue' if x['overdue'] else ''}{_received(x)})",
                markup=False,
            )
        for x in [x for x in r["late_submissions"] if x["id"] not in {o["id"] for o in r["outstanding_submissions"]}]:
            console.print(
                f"  received late: {x['organisation']} {x['doc_type'].replace('_', ' ')} ({x['state']}, due {x['due_on']}"
                f"{_received(x)})",
                markup=False,
            )
        if r["carried_forward"]:
            console.print(f"  carried forward from the previous cycle: {', '.join(r['carried_forward'])}", markup=False)
        if not r["planned"]:
            console.print("  (this programme year is not planned yet: peerwatch cycle plan)")


def _received(x: dict[str, object]) -> str:
    """ ", received 2027-07-01, 1 working day late (1 calendar day)", as recorded at receipt."""
    if not x.get("received_on"):
        return ""
    if not x["late"]:
        return f", received {x['received_on']}, on time"
    w, d = x["working_days_late"], x["days_late"]
    return (
        f", received {x['received_on']}, LATE by {w} working day{'' if w == 1 else 's'}"
        f" ({d} calendar day{'' if d == 1 else 's'})"
    )


@app.command("plan")
def plan(
    ctx: typer.Context,
    year: Annotated[
        int | None, typer.Option(help="Programme year (the April it starts in); default the current one.")
    ] = None,
    network: Annotated[str | None, typer.Option(help="Network code; default every network.")] = None,
    role: ROLE = None,
) -> None:
    """Create the phases of a programme year (once) and carry open concerns into a new cycle (audited)."""
    run = of(ctx)
    run.db()
    out = {}
    with session_scope() as s:
        who = run.acting(s, role)
        y = year or programme_year_of(local_date(who.clock.now()))
        for n in networks_or_one(s, network):
            out[n.code] = plan_year(s, n, y, who.clock, principal=who.principal)
    if run.json:
        print_json({"programme_year": y, "networks": out})
    else:
        for code, r in out.items():
            console.print(
                f"{code} {y}-{str(y + 1)[2:]}: {r['phases']} phase(s) planned, {r['carried_forward']} open concern(s) carried forward"
            )


@app.command("quarters")
def phase_list(
    ctx: typer.Context,
    network: Annotated[str, typer.Option(help="Network code.")],
    year: Annotated[
        int | None, typer.Option(help="Programme year (the April it starts in); default the current one.")
    ] = None,
) -> None:
    """Each step of the network's programme, its quarter, and where the quarter comes from."""
    run = of(ctx)
    y = year or programme_year_of(run.today())
    with Session(run.db()) as s:
        rows = placements(s, network_by_code(s, network), y)
    run.rows(
        f"{network} {y}-{str(y + 1)[2:]}: the quarter of each step",
        ["step", "quarter", "source", "title"],
        [(r["step"], r["quarter"], r["source"], r["title"]) for r in rows],
    )


@app.command("set-quarter")
def phase_set(
    ctx: typer.Context,
    network: Annotated[str, typer.Option(help="Network code.")],
    step: Annotated[str, typer.Option(help="The step's key (peerwatch cycle phase list), e.g. visits.")],
    quarter: Annotated[str, typer.Option(help="Q1 Apr-Jun, Q2 Jul-Sep, Q3 Oct-Dec, Q4 Jan-Mar.")],
    from_year: Annotated[
        int | None, typer.Option(help="Programme year it applies from (default the current one).")
    ] = None,
    role: ROLE = None,
    note: Annotated[str | None, typer.Option(help="Why, e.g. the network board's decision.")] = None,
) -> None:
    """Move a step of a local-policy programme (West Midlands) to another quarter, audited."""
    run = of(ctx)
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        out = set_phase_quarter(
            s,
            network_by_code(s, network),
            step,
            quarter,
            principal=who.principal,
            clock=who.clock,
            from_year=from_year,
            note=note,
        )
        result: dict[str, Any] = {
            "network": network,
            "step": step,
            "quarter": out.row.quarter,
            "from_year": out.row.from_year,
            "phases_planned": out.planned,
            "rescheduled": [
                {
                    "id": p.id,
                    "programme_year": p.programme_year,
                    "opens_on": p.opens_on.isoformat(),
                    "due_on": p.due_on.isoformat(),
                }
                for p in out.rescheduled
            ],
        }
    if run.json:
        print_json(result)
        return
    y = result["from_year"]
    console.print(
        f"{network}: {step} in {result['quarter']} from {y}-{str(y + 1)[2:]} (local policy); "
        f"{len(result['rescheduled'])} planned phase(s) moved",
        markup=False,
    )
    for r in result["rescheduled"]:
        console.print(
            f"  phase {r['id']} ({r['programme_year']}): opens {r['opens_on']}, due {r['due_on']}", markup=False
        )
