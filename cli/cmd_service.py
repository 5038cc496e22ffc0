"""``peerwatch service``: services, and the Trusts that run them."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import Session

from cli.context import ROLE, of
from models import session_scope
from states.services.operator import add_service, check_nation
from states.views.directory import services

NAME = "service"
app = typer.Typer(help="Services (and the Trusts that run them).", no_args_is_help=True)


@app.command("add")
def service_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Service name.")],
    kind: Annotated[str, typer.Option(help="Major Trauma Centre, Trauma Unit, Burns, Spine, Adult Critical Care, ...")],
    organisation: Annotated[str, typer.Option(help="Trust name (created if new).")],
    network: Annotated[str, typer.Option(help="Network code.")],
    nation: Annotated[str, typer.Option(help="UK nation of a new Trust: ENG, WLS, SCT or NIR.")] = "ENG",
    pathway: Annotated[str | None, typer.Option(help="The shared pathway the service belongs to.")] = None,
    role: ROLE = None,
) -> None:
    """Add a service run by a Trust in a network (audited)."""
    run = of(ctx)
    check_nation(nation)
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        svc = add_service(
            s,
            name=name,
            kind=kind,
            organisation=organisation,
            network=network,
            nation=nation,
            pathway=pathway,
            principal=who.principal,
            clock=who.clock,
        )
        run.created("service", svc.id)


@app.command("list")
def service_list(ctx: typer.Context) -> None:
    """List services."""
    run = of(ctx)
    with Session(run.db()) as s:
        rows = services(s)
    run.rows("services", ["id", "name", "kind", "trust", "nation", "network"], rows)
