"""``peerwatch outbox``: the letters queued, sent, failed or in doubt, and the operator's word on them."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import Session

from cli.context import ROLE, of
from cli.output import console, print_json, table
from models import session_scope
from models.tables import is_in_doubt
from states.clock import show
from states.errors import InvalidInput
from states.services.outbox import SETTLE_ACTIONS, retry, settle_in_doubt
from states.views.outbox import check_status, message, messages

NAME = "outbox"
app = typer.Typer(help="The outbox of letters.", no_args_is_help=True)


@app.command("list")
def outbox_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="queued, sending, sent, failed, undeliverable")] = None,
    incidents_only: Annotated[
        bool,
        typer.Option(
            "--incidents", help="Only open incidents: failed, undeliverable, and sends interrupted or in doubt."
        ),
    ] = False,
) -> None:
    """List messages (failed, undeliverable and stuck 'sending' ones are incidents)."""
    from notifications.dispatch import incidents  # lazy: start-up time (Jinja2)

    run = of(ctx)
    check_status(status)
    with Session(run.db()) as s:
        if incidents_only:
            rows = [m for m in incidents(s, run.clock().now()) if not status or m.status == status]
        else:
            rows = messages(s, status)
    out = [
        {
            "id": m.id,
            "status": "in doubt" if is_in_doubt(m) else m.status,
            "template": m.template,
            "category": m.category,
            "item": f"{m.kind} {m.item_id}",
            "to": ", ".join(p["email"] for p in m.to),
            "cc": ", ".join(p["email"] for p in m.cc),
            "attempts": m.attempts,
            "next_try": show(m.next_attempt_at) if m.status in ("queued", "failed") else "",
            "resend_at": show(m.resend_at) if m.resend_at else "",
            "resent_at": show(m.resent_at) if m.resent_at else "",
            "error": m.last_error,
        }
        for m in rows
    ]
    if run.json:
        print_json(out)
    else:
        title = f"outbox incidents ({len(out)})" if incidents_only else f"outbox ({len(out)})"
        table(
            title,
            ["id", "status", "template", "item", "to", "attempts", "next try", "error"],
            [
                (o["id"], o["status"], o["template"], o["item"], o["to"], o["attempts"], o["next_try"], o["error"])
                for o in out
            ],
        )


@app.command("show")
def outbox_show(
    ctx: typer.Context,
    message_id: Annotated[int, typer.Argument(help="outbox message id (peerwatch outbox list)")],
    html: Annotated[bool, typer.Option("--html", help="Print the HTML part instead of the plain text.")] = False,
) -> None:
    """One letter: as sent, or as it will be sent (rendered now from what the transition stored)."""
    from notifications.render import rendered  # lazy: start-up time (Jinja2)

    run = of(ctx)
    with Session(run.db()) as s:
        m = message(s, message_id)
    letter = rendered(m)
    people = ", ".join(f"{p['name']} <{p['email']}>" for p in m.to)
    copies = ", ".join(f"{p['name']} <{p['email']}>" for p in m.cc)
    when = f"sent {show(m.sent_at)}" if m.sent_at else f"not sent yet: {m.status}, rendered now from its stored context"
    if run.json:
        print_json(
            {
                "id": m.id,
                "status": m.status,
                "template": m.template,
                "item": f"{m.kind} {m.item_id}",
                "to": m.to,
                "cc": m.cc,
                "sent_at": m.sent_at,
                "subject": letter.subject,
                "body_text": letter.body_text,
                "body_html": letter.body_html,
            }
        )
        return
    for label, value in (
        ("Message", f"{m.id} ({when})"),
        ("Item", f"{m.kind} {m.item_id}"),
        ("Template", m.template),
        ("To", people or "nobody"),
        ("Cc", copies),
        ("Subject", letter.subject),
    ):
        if value:
            console.print(f"{label + ':':9} {value}", markup=False, highlight=False)
    console.print("", markup=False)
    console.print(letter.body_html if html else letter.body_text, markup=False, highlight=False, soft_wrap=True)


@app.command("retry")
def outbox_retry(
    ctx: typer.Context,
    ids: Annotated[list[int] | None, typer.Argument(help="outbox message id(s)")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Every failed message.")] = False,
    role: ROLE = None,
) -> None:
    """Queue failed or in-doubt messages to go on the next dispatch (in doubt: only once you know it did not arrive)."""
    run = of(ctx)
    if not ids and not all_failed:
        raise InvalidInput("name the message id(s) to retry, or give --all-failed")
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        done = [m.id for m in retry(s, ids or [], all_failed=all_failed, principal=who.principal, clock=who.clock)]
    print_json({"queued": done}) if run.json else console.print(
        f"queued again: {', '.join(map(str, done)) or 'nothing'}"
    )


@app.command("in-doubt")
def outbox_in_doubt(
    ctx: typer.Context,
    ids: Annotated[list[int], typer.Argument(help="outbox message id(s) in doubt (peerwatch outbox list --incidents)")],
    hold: Annotated[
        bool, typer.Option("--hold", help="Do not resend it automatically (it stays an incident).")
    ] = False,
    resend: Annotated[
        bool, typer.Option("--resend", help="Resend it on the next dispatch, with the same Message-ID.")
    ] = False,
    delivered: Annotated[
        bool, typer.Option("--delivered", help="The recipient has it: mark it sent, never resend it.")
    ] = False,
    role: ROLE = None,
) -> None:
    """Settle letters left in doubt by a crash mid-send (by default each is resent once, same
    Message-ID, PEERWATCH_IN_DOUBT_RESEND_SECONDS after the crash was found)."""
    run = of(ctx)
    chosen = [a for a, on in zip(SETTLE_ACTIONS, (hold, resend, delivered)) if on]
    if len(chosen) != 1:
        raise InvalidInput("give one of --hold, --resend or --delivered")
    run.db()
    with session_scope() as s:
        who = run.acting(s, role)
        done = [m.id for m in settle_in_doubt(s, ids, chosen[0], principal=who.principal, clock=who.clock)]
    print_json({chosen[0]: done}) if run.json else console.print(f"{chosen[0]}: {', '.join(map(str, done))}")
