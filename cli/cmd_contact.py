"""``peerwatch contact``: the contacts database, who holds which role, from when to when."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlmodel import Session

from cli.context import ACTOR_DEFAULT, of, who
from cli.output import console, errors, print_json, table
from models import session_scope
from states.clock import parse_date, show
from states.roles import check_contact_role
from states.services.contacts import add_contact, contact_history, describe, edit_contact, retire_contact, status
from states.views.directory import contacts, network_by_code, organisation_by_name

NAME = "contact"
app = typer.Typer(help="The contacts database: who holds which role.", no_args_is_help=True)


@app.command("add")
def contact_add(
    ctx: typer.Context,
    role: Annotated[str, typer.Option(help="Contact role, e.g. chief-executive, service-lead, network-manager, cqc.")],
    name: Annotated[str, typer.Option()],
    email: Annotated[str, typer.Option()],
    service: Annotated[int | None, typer.Option(help="Service id (for service-level roles).")] = None,
    organisation: Annotated[str | None, typer.Option(help="Trust name (for Trust-level roles).")] = None,
    network: Annotated[str | None, typer.Option(help="Network code (for network and regional roles).")] = None,
    valid_from: Annotated[
        str | None, typer.Option("--from", help="Holds the role from this date (default: at once).")
    ] = None,
    actor: ACTOR_DEFAULT = None,
    role_as: Annotated[str, typer.Option("--as", help="Actor role.")] = "network-office",
) -> None:
    """Add a person holding a role (audited). With no scope, the contact is national."""
    run = of(ctx)
    check_contact_role(role)
    day = parse_date(valid_from, "--from date") if valid_from else None
    run.db()
    with session_scope() as s:
        org_id = organisation_by_name(s, organisation).id if organisation else None
        net_id = network_by_code(s, network).id if network else None
        c = add_contact(
            s,
            role=role,
            name=name,
            email=email,
            service_id=service,
            organisation_id=org_id,
            network_id=net_id,
            valid_from=day,
            actor=who(actor),
            actor_role=role_as,
            clock=run.clock(),
        )
        run.created("contact", c.id)


@app.command("edit")
def contact_edit(
    ctx: typer.Context,
    contact_id: Annotated[int, typer.Argument(help="contact id (peerwatch contact list)")],
    effective: Annotated[
        str, typer.Option("--from", help="Letters go to the edited contact from this date (YYYY-MM-DD).")
    ],
    name: Annotated[str | None, typer.Option(help="The new name (e.g. the successor in the role).")] = None,
    email: Annotated[str | None, typer.Option(help="The new email address.")] = None,
    actor: Annotated[str, typer.Option(help="Who is acting.")] = "",
    role: Annotated[str, typer.Option(help="Actor role.")] = "network-office",
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Change who holds a role, or their address, from a date: the old row is kept as history."""
    run = of(ctx)
    day = parse_date(effective, "--from date")
    run.db()
    with session_scope() as s:
        out = edit_contact(
            s,
            contact_id,
            name=name,
            email=email,
            effective=day,
            actor=actor,
            actor_role=role,
            clock=run.clock(),
            note=note,
        )
        run.created("contact", out.row.id, replaces=contact_id, valid_from=day.isoformat())
    if not run.json:
        console.print(f"  replaces contact {contact_id} from {day.isoformat()}")


@app.command("retire")
def contact_retire(
    ctx: typer.Context,
    contact_id: Annotated[int, typer.Argument(help="contact id (peerwatch contact list)")],
    effective: Annotated[str, typer.Option("--from", help="No letters from this date (YYYY-MM-DD).")],
    actor: Annotated[str, typer.Option(help="Who is acting.")] = "",
    role: Annotated[str, typer.Option(help="Actor role.")] = "network-office",
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Retire a contact from a date (kept as history); warns if nobody else then holds the role."""
    run = of(ctx)
    day = parse_date(effective, "--from date")
    run.db()
    with session_scope() as s:
        out = retire_contact(s, contact_id, effective=day, actor=actor, actor_role=role, clock=run.clock(), note=note)
    for w in out.warnings:
        errors.print(f"warning: {w}", markup=False)
    data = {"id": contact_id, "retired_from": day.isoformat(), "warnings": out.warnings}
    print_json(data) if run.json else console.print(f"contact {contact_id} retired from {day.isoformat()}")


@app.command("history")
def contact_history_cmd(ctx: typer.Context, contact_id: Annotated[int, typer.Argument(help="contact id")]) -> None:
    """Who held this role here, from when to when, and every audited change with who made it."""
    run = of(ctx)
    today = run.today()
    with Session(run.db()) as s:
        rows, events = contact_history(s, contact_id)
        held = [
            {
                "id": c.id,
                "role": c.role,
                "name": c.name,
                "email": c.email,
                "from": c.valid_from,
                "until": c.valid_until,
                "status": status(c, today),
            }
            for c in rows
        ]
    changes: list[dict[str, Any]] = [
        {
            "at": e.at,
            "contact": e.item_id,
            "change": e.trigger,
            "actor": e.actor,
            "role": e.role,
            "note": e.note,
            "data": e.data,
        }
        for e in events
    ]
    if run.json:
        print_json({"holders": held, "changes": changes})
        return
    table(
        f"contact {contact_id}: holders",
        ["id", "role", "name", "email", "from", "until", "status"],
        [(h["id"], h["role"], h["name"], h["email"], h["from"] or "", h["until"] or "", h["status"]) for h in held],
    )
    table(
        "changes",
        ["when", "contact", "change", "who", "role", "what"],
        [(show(c["at"]), c["contact"], c["change"], c["actor"], c["role"], describe(c["data"])) for c in changes],
    )


@app.command("list")
def contact_list(
    ctx: typer.Context,
    every: Annotated[
        bool, typer.Option("--all", help="Also retired and replaced contacts, and those not yet in force.")
    ] = False,
) -> None:
    """List the contacts in force today (--all: with their history)."""
    run = of(ctx)
    today = run.today()
    with Session(run.db()) as s:
        rows = [
            (c.id, c.role, c.name, c.email, c.service_id, c.organisation_id, c.network_id, status(c, today))
            for c in contacts(s, today, every)
        ]
    run.rows("contacts", ["id", "role", "name", "email", "service", "trust", "network", "status"], rows)
