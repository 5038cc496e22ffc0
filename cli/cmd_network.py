"""``peerwatch network``: the clinical networks."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import Session

from cli.context import ROLE, of
from models import session_scope
from states.services.operator import add_network
from states.views.directory import networks

NAME = "network"
app = typer.Typer(help="Clinical networks.", no_args_is_help=True)


@app.command("add")
def network_add(
    ctx: typer.Context,
    code: Annotated[str, typer.Option(help="Short code, e.g. WMTN.")],
    name: Annotated[str, typer.Option(help="Full name.")],
    cycle: Annotated[str, typer.Option(help="annual | biennial")] = "annual",
    role: ROLE = None,
) -> None:
    """Add a network (audited)."""
    run = of(ctx)
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        n = add_network(s, code, name, cycle, principal=who.principal, clock=who.clock)
        run.created("network", n.id)


@app.command("list")
def network_list(ctx: typer.Context) -> None:
    """List networks."""
    run = of(ctx)
    with Session(run.db()) as s:
        rows = networks(s)
    run.rows("networks", ["id", "code", "name", "cycle"], rows)
