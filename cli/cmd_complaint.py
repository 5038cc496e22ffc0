"""``peerwatch complaint``: complaints about the process or conduct of a review (000 s8.2); show,
list, fire and history are the generic ones."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.context import ROLE, of
from cli.items import add_item_commands
from models import session_scope
from states.clock import local_date, parse_date
from states.services.intake import receive_complaint
from states.services.items import deadline_json

NAME = "complaint"
app = typer.Typer(help="Complaints about the process or conduct of a review.", no_args_is_help=True)


@app.command("receive")
def complaint_receive(
    ctx: typer.Context,
    network: Annotated[str, typer.Option(help="Network code.")],
    category: Annotated[str, typer.Option(help="arrangements, conduct, report_drafting, factual_accuracy")],
    from_name: Annotated[str, typer.Option(help="Complainant's name.")],
    from_email: Annotated[str, typer.Option(help="Complainant's email.")],
    summary: Annotated[str, typer.Option(help="What the complaint is about.")],
    service: Annotated[int | None, typer.Option(help="Service id, if about one service's review.")] = None,
    about_person: Annotated[
        bool, typer.Option("--about-person", help="About a person rather than the conduct of their role.")
    ] = False,
    received: Annotated[str | None, typer.Option(help="Date received (default today).")] = None,
    role: ROLE = None,
) -> None:
    """Record a complaint; it is routed to its owner by category."""
    run = of(ctx)
    day = parse_date(received, "--received date") if received else None
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        out = receive_complaint(
            s,
            network=network,
            category=category,
            from_name=from_name,
            from_email=from_email,
            summary=summary,
            service=service,
            about_person=about_person,
            received=day or local_date(who.clock.now()),
            principal=who.principal,
            clock=who.clock,
        )
        run.created("complaint", out.row.id, state=out.row.state, deadlines=deadline_json(s, "complaint", out.row.id))  # type: ignore[arg-type]


add_item_commands(app, NAME)
