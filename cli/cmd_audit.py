"""``peerwatch audit``: prove the audit trail has not been altered; list refused attempts."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import Session

from cli.context import of
from cli.output import console, print_json, table
from states.clock import show
from states.engine import verify_chain
from states.errors import PeerwatchError
from states.views.directory import refused_attempts

NAME = "audit"
app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)


@app.command("verify")
def verify(ctx: typer.Context) -> None:
    """Recompute the hash chain over every audit event; name the first broken link."""
    run = of(ctx)
    with Session(run.db()) as s:
        checked, broken, problem = verify_chain(s)
    if run.json:
        print_json(
            {
                "checked": checked,
                "ok": problem is None,
                "first_broken_event": broken.id if broken else None,
                "problem": problem,
            }
        )
    if problem:
        raise PeerwatchError(f"audit chain broken after {checked} good event(s): {problem}")
    if not run.json:
        console.print(f"audit chain intact: {checked} event(s) verified")


@app.command("refused")
def refused(ctx: typer.Context, limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50) -> None:
    """Refused attempts: who tried what, when, and why."""
    run = of(ctx)
    with Session(run.db()) as s:
        rows = refused_attempts(s, limit)
    data = [
        {
            "at": r.at,
            "kind": r.kind,
            "item": r.item_id,
            "trigger": r.trigger,
            "actor": r.actor,
            "role": r.role,
            "reason": r.reason,
        }
        for r in rows
    ]
    if run.json:
        print_json(data)
    else:
        table(
            "refused attempts",
            ["when", "kind", "item", "trigger", "actor", "role", "reason"],
            [(show(r.at), r.kind, r.item_id, r.trigger, r.actor, r.role, r.reason) for r in rows],
        )
