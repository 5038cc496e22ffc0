"""``peerwatch contact``: the contacts database, who holds which role, from when to when."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlmodel import Session

from cli.context import ROLE, Context, of
from cli.output import console, errors, print_json, table
from models import session_scope
from models.accounts import PendingChange
from states.clock import parse_date, show
from states.roles import CONTACT_ROLES, check_contact_role
from states.services.contacts import (
    add_contact,
    confirm_change,
    contact_history,
    describe,
    edit_contact,
    retire_contact,
    status,
    withdraw_change,
)
from states.services.trust_accounts import invite_contact
from states.views.directory import contacts, network_by_code, organisation_by_name, pending_contact_changes

NAME = "contact"
app = typer.Typer(help="The contacts database: who holds which role.", no_args_is_help=True)
NOTE = Annotated[str | None, typer.Option(help="Why (kept in the audit trail).")]


def _proposed(run: Context, pc: PendingChange) -> None:
    """Say that a change waits for a second person, and how it is confirmed."""
    data = {"change": pc.id, "status": pc.status, "action": pc.action, "contact": pc.target_id}
    run.say(
        data,
        f"change {pc.id} proposed: an escalation address changes only when a different account confirms it "
        f"(peerwatch contact confirm {pc.id}); nothing the letters use has changed",
    )


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
    acting_role: ROLE = None,
    note: NOTE = None,
) -> None:
    """Add a person holding a role (audited). With no scope, the contact is national. An escalation
    address (cqc, commissioning-lead, responsible-commissioner, accountable-officer, icb, tpd, ra,
    asct) is only proposed until a second person confirms it (peerwatch contact pending)."""
    run = of(ctx)
    check_contact_role(role)
    day = parse_date(valid_from, "--from date") if valid_from else None
    run.db()
    with session_scope() as s:
        who = run.acting(s, acting_role)
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
            principal=who.principal,
            clock=who.clock,
            note=note,
        )
    if isinstance(c, PendingChange):
        _proposed(run, c)
    else:
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
    role: ROLE = None,
    note: NOTE = None,
) -> None:
    """Change who holds a role, or their address, from a date: the old row is kept as history.
    An escalation address is only proposed until a second person confirms it."""
    run = of(ctx)
    day = parse_date(effective, "--from date")
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        out = edit_contact(
            s, contact_id, name=name, email=email, effective=day, principal=who.principal, clock=who.clock, note=note
        )
    if out.pending is not None:
        _proposed(run, out.pending)
        return
    run.created("contact", out.row.id, replaces=contact_id, valid_from=day.isoformat())
    if not run.json:
        console.print(f"  replaces contact {contact_id} from {day.isoformat()}")


@app.command("retire")
def contact_retire(
    ctx: typer.Context,
    contact_id: Annotated[int, typer.Argument(help="contact id (peerwatch contact list)")],
    effective: Annotated[str, typer.Option("--from", help="No letters from this date (YYYY-MM-DD).")],
    role: ROLE = None,
    note: NOTE = None,
) -> None:
    """Retire a contact from a date (kept as history); warns if nobody else then holds the role.
    An escalation address is only proposed until a second person confirms it."""
    run = of(ctx)
    day = parse_date(effective, "--from date")
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        out = retire_contact(s, contact_id, effective=day, principal=who.principal, clock=who.clock, note=note)
    if out.pending is not None:
        _proposed(run, out.pending)
        return
    for w in out.warnings:
        errors.print(f"warning: {w}", markup=False)
    data = {"id": contact_id, "retired_from": day.isoformat(), "warnings": out.warnings}
    print_json(data) if run.json else console.print(f"contact {contact_id} retired from {day.isoformat()}")


@app.command("invite")
def contact_invite(
    ctx: typer.Context,
    contact_id: Annotated[int, typer.Argument(help="contact id (peerwatch contact list)")],
    days: Annotated[
        int | None, typer.Option(help="The link works this many days (default PEERWATCH_INVITATION_DAYS, else 7).")
    ] = None,
    role: ROLE = None,
) -> None:
    """Invite a Trust or commissioner contact to the portal: their account (found by email or
    made), their contact role granted where they hold it (ending when the contact is retired),
    and an email with a single-use link to choose a password, sent by the outbox (the link is
    made when it is sent: it is never shown here nor stored)."""
    run = of(ctx)
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        out = invite_contact(s, who.principal, contact_id, who.clock, days=days)
    data = {
        "contact": out.contact_id,
        "account": out.user_id,
        "name": out.name,
        "email": out.email,
        "account_created": out.account_created,
        "grant": out.grant_id,
        "grant_created": out.grant_created,
        "role": out.role,
        "scope": out.scope,
        "scope_id": out.scope_id,
        "access_until": out.valid_until.isoformat() if out.valid_until else None,
        "invitation": out.invitation_id,
        "expires_at": out.expires_at.isoformat(),
        "outbox_message": out.outbox_id,
        "kept_waiting_letter": out.reused,
    }
    if run.json:
        print_json(data)
        return
    console.print(
        f"invited {out.name} <{out.email}> (account {out.user_id}, {'new' if out.account_created else 'existing'})",
        markup=False,
        highlight=False,
    )
    until = f", until {out.valid_until.isoformat()}" if out.valid_until else ""
    console.print(
        f"  grant {out.grant_id} ({'new' if out.grant_created else 'already held'}): {out.role} in {out.scope} "
        f"{out.scope_id}{until}",
        markup=False,
        highlight=False,
    )
    how = "already waiting to be sent: kept, no second email" if out.reused else "emailed on the next outbox dispatch"
    console.print(
        f"  invitation {out.invitation_id} expires {show(out.expires_at)} ({how}, outbox message {out.outbox_id})",
        markup=False,
        highlight=False,
    )


@app.command("pending")
def contact_pending(
    ctx: typer.Context,
    every: Annotated[bool, typer.Option("--all", help="Also confirmed and withdrawn changes.")] = False,
) -> None:
    """Changes to escalation addresses waiting for a second person (peerwatch contact confirm ID)."""
    run = of(ctx)
    with Session(run.db()) as s:
        rows = []
        for p in pending_contact_changes(s, every):
            role = p.payload.get("role") or ""
            what = describe({k: v for k, v in p.payload.items() if k != "seen"})
            rows.append(
                (p.id, p.action, p.target_id or "", CONTACT_ROLES.get(role, role), what, p.proposed_name,
                 show(p.proposed_at), p.status)
            )  # fmt: skip
    run.rows(
        "changes to contacts", ["change", "action", "contact", "role", "what", "proposed by", "at", "status"], rows
    )


@app.command("confirm")
def contact_confirm(
    ctx: typer.Context,
    change_id: Annotated[int, typer.Argument(help="change id (peerwatch contact pending)")],
    role: ROLE = None,
    note: NOTE = None,
) -> None:
    """Confirm a change another account proposed: it is applied now (audited, with both names)."""
    run = of(ctx)
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        out = confirm_change(s, change_id, principal=who.principal, clock=who.clock, note=note)
        assert out.pending is not None
        action, contact_id = out.pending.action, out.row.id
    for w in out.warnings:
        errors.print(f"warning: {w}", markup=False)
    run.say(
        {"change": change_id, "status": "confirmed", "action": action, "contact": contact_id, "warnings": out.warnings},
        f"change {change_id} confirmed: {action} applied to contact {contact_id}",
    )


@app.command("withdraw")
def contact_withdraw(
    ctx: typer.Context,
    change_id: Annotated[int, typer.Argument(help="change id (peerwatch contact pending)")],
    role: ROLE = None,
    note: NOTE = None,
) -> None:
    """Withdraw a change you proposed (audited); nothing else changes."""
    run = of(ctx)
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        withdraw_change(s, change_id, principal=who.principal, clock=who.clock, note=note)
    run.say({"change": change_id, "status": "withdrawn"}, f"change {change_id} withdrawn")


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
            "contact": e.item_id if e.kind == "contact" else f"change {e.item_id}",
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
