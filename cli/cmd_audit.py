"""``peerwatch audit``: prove the audit trail has not been altered; list refused attempts."""

from __future__ import annotations

from typing import Annotated

import typer

NAME = "audit"
app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)


@app.command("verify")
def verify() -> None:
    """Recompute the hash chain over every audit event; name the first broken link."""
    from sqlmodel import Session

    from cli.main import OPTS, _db
    from cli.output import console, print_json
    from states.engine import verify_chain
    from states.errors import PeerwatchError

    with Session(_db()) as s:
        checked, broken, problem = verify_chain(s)
    if OPTS.json:
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
    if not OPTS.json:
        console.print(f"audit chain intact: {checked} event(s) verified")


@app.command("refused")
def refused(limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50) -> None:
    """Refused attempts: who tried what, when, and why."""
    from sqlmodel import Session, select

    from cli.main import OPTS, _db
    from cli.output import print_json, table
    from models import RefusedAttempt
    from states.clock import show

    with Session(_db()) as s:
        rows = list(s.exec(select(RefusedAttempt).order_by(RefusedAttempt.id.desc()).limit(limit)))  # type: ignore[union-attr]
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
    if OPTS.json:
        print_json(data)
    else:
        table(
            "refused attempts",
            ["when", "kind", "item", "trigger", "actor", "role", "reason"],
            [(show(r.at), r.kind, r.item_id, r.trigger, r.actor, r.role, r.reason) for r in rows],
        )
