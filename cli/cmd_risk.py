"""``peerwatch risk``: immediate risks (IR), serious concerns (SC) and general concerns (GC) (000 s6),
with their action plans' milestones; show, list, fire and history are the generic ones."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.context import ROLE, of
from cli.items import add_item_commands
from cli.output import errors
from models import session_scope
from states.clock import parse_date
from states.services import milestones
from states.services.intake import raise_risk
from states.services.items import deadline_json

NAME = "risk"
app = typer.Typer(help="Immediate risks (IR), serious concerns (SC) and general concerns (GC).", no_args_is_help=True)


@app.command("raise")
def risk_raise(
    ctx: typer.Context,
    service: Annotated[int, typer.Option(help="Service id.")],
    level: Annotated[str, typer.Option(help="IR, SC or GC.")],
    title: Annotated[str, typer.Option(help="What was found.")],
    role: ROLE = None,
    standard: Annotated[str | None, typer.Option(help="Standard reference, e.g. T-12.")] = None,
    visit_date: Annotated[
        str | None, typer.Option(help="Date of the visit where it was found (verbal notification that day).")
    ] = None,
    identified: Annotated[
        str | None, typer.Option(help="Date identified, if not at a visit (e.g. self-assessment validation).")
    ] = None,
    impact: Annotated[int | None, typer.Option(help="Impact 1-6 (Appendix 4).")] = None,
    likelihood: Annotated[int | None, typer.Option(help="Likelihood 1-6 (Appendix 4).")] = None,
    doctors_in_training: Annotated[
        bool, typer.Option("--doctors-in-training", help="The concern affects doctors in training.")
    ] = False,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Raise a risk or concern found at a visit or at self-assessment validation."""
    run = of(ctx)
    visit = parse_date(visit_date, "--visit-date") if visit_date else None
    found = parse_date(identified, "--identified date") if identified else None
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        out = raise_risk(
            s,
            service=service,
            level=level,
            title=title,
            standard=standard,
            visit_date=visit,
            identified=found,
            impact=impact,
            likelihood=likelihood,
            doctors_in_training=doctors_in_training,
            principal=who.principal,
            clock=who.clock,
            note=note,
        )
        run.created("risk", out.row.id, state=out.row.state, deadlines=deadline_json(s, "risk", out.row.id))  # type: ignore[arg-type]


@app.command("milestone")
def risk_milestone(
    ctx: typer.Context,
    risk_id: Annotated[int, typer.Argument(help="Risk id.")],
    text: Annotated[str, typer.Option(help="What will be done.")],
    due: Annotated[
        str | None, typer.Option(help="Milestone date YYYY-MM-DD (moved to the next working day if it is not one).")
    ] = None,
    working_days: Annotated[
        int | None, typer.Option("--working-days", help="Or: due this many working days from today.")
    ] = None,
    owner: Annotated[
        str, typer.Option(help="Contact role who owns it and is chased when it is overdue.")
    ] = "service-lead",
    role: ROLE = None,
) -> None:
    """Record a milestone of the action plan agreed for a risk (audited; chased by the sweep when overdue)."""
    run = of(ctx)
    due_on = parse_date(due, "--due date") if due else None
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        out = milestones.add(
            s,
            risk_id,
            text=text,
            due_on=due_on,
            working_days=working_days,
            owner_role=owner,
            principal=who.principal,
            clock=who.clock,
        )
        for n in out.notes:
            errors.print(f"note: {n}", markup=False)
        run.created("milestone", out.row.id, due_on=out.row.due_on.isoformat(), owner=owner)


add_item_commands(app, NAME)
