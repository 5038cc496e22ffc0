"""``peerwatch milestone``: the action plans' milestones, marked done (audited) and listed."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import Session

from cli.context import ROLE, of
from cli.output import console, print_json, table
from models import session_scope
from states.clock import parse_date
from states.services import milestones as plans
from states.views.directory import milestones

NAME = "milestone"
app = typer.Typer(
    help="Action plan milestones of IRs and SCs: list, mark done (record one with `risk milestone`).",
    no_args_is_help=True,
)


@app.command("done")
def done(
    ctx: typer.Context,
    milestone_id: Annotated[int, typer.Argument(help="milestone id (peerwatch milestone list)")],
    role: ROLE = None,
    on: Annotated[str | None, typer.Option(help="The date it was done (default today).")] = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Mark a milestone done (audited; no longer chased)."""
    run = of(ctx)
    day = parse_date(on, "--on date") if on else None
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        m = plans.mark_done(s, milestone_id, principal=who.principal, clock=who.clock, on=day, note=note)
        data = {"id": m.id, "risk": m.risk_id, "done_on": m.done_on, "done_by": m.done_by}
    print_json(data) if run.json else console.print(
        f"milestone {data['id']} of risk {data['risk']} done on {data['done_on']}"
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    risk: Annotated[int | None, typer.Option(help="Only this risk's milestones.")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only those not done.")] = False,
) -> None:
    """Milestones with their owner, due date, and whether done, chased or overdue."""
    run = of(ctx)
    today = run.today()
    with Session(run.db()) as s:
        rows = milestones(s, today, risk, open_only)
    if run.json:
        print_json(rows)
        return
    table(
        f"milestones ({len(rows)})",
        ["id", "risk", "due", "milestone", "owner", "done", "chased", "overdue"],
        [
            (
                r["id"],
                r["risk"],
                r["due_on"],
                r["text"],
                r["owner"],
                f"{r['done_on']} by {r['done_by']}" if r["done_on"] else "",
                r["chased_on"] or "",
                "OVERDUE" if r["overdue"] else "",
            )
            for r in rows
        ],
    )
