"""``peerwatch permissions``: who may fire which trigger, as the engine checks it.

The defaults are the machines' own tables; an administrator overrides one trigger with
``permissions set`` and goes back to the default with ``permissions reset``, each an audited
event. ``peerwatch init --permissions FILE`` may seed the overrides once; no environment
variable changes them.
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import Session

from cli.context import of
from cli.output import print_json, table
from states.errors import InvalidInput
from states.permissions import matrix
from states.services import accounts

NAME = "permissions"
app = typer.Typer(
    help="Who may fire which trigger: the machines' defaults and an administrator's changes (set, reset).",
    invoke_without_command=True,
)


@app.callback()
def show(ctx: typer.Context, kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None) -> None:
    """Print the permission table in force (changed rows marked)."""
    if ctx.invoked_subcommand is not None:
        return
    run = of(ctx)
    with Session(run.db()) as s:
        rows = [r for r in matrix(s) if kind in (None, r["kind"])]
    if run.json:
        print_json(rows)
    else:
        table(
            "permissions in force (auditor: read-only; administrator: fires nothing clinical)",
            ["kind", "trigger", "roles", "four eyes", "changed"],
            [
                (
                    r["kind"],
                    r["trigger"],
                    ", ".join(r["roles"]),
                    "yes" if r["four_eyes"] else "",
                    "CHANGED" if r["changed"] else "",
                )
                for r in rows
            ],
        )


def _roles(text: str | None) -> list[str] | None:
    if text is None:
        return None
    roles = [r.strip() for r in text.split(",") if r.strip()]
    if not roles:
        raise InvalidInput("--roles needs at least one role (a,b,...)")
    return roles


@app.command("set")
def set_rule(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="The kind (risk, visit, report, ...).")],
    trigger: Annotated[str, typer.Argument(help="The trigger.")],
    roles: Annotated[str | None, typer.Option(help="The roles that may fire it, comma-separated.")] = None,
    four_eyes: Annotated[
        bool | None, typer.Option("--four-eyes/--no-four-eyes", help="Whether a second person must confirm it.")
    ] = None,
) -> None:
    """Change who may fire one trigger, or whether it needs four eyes (administrators; audited)."""
    run = of(ctx)
    with Session(run.db(), expire_on_commit=False) as s:
        who = run.acting(s)
        row = accounts.set_permission(
            s, who.principal, who.clock, kind, trigger, roles=_roles(roles), four_eyes=four_eyes
        )
        s.commit()
    run.say(
        {"kind": kind, "trigger": trigger, "roles": row.roles, "four_eyes": row.four_eyes},
        f"{kind}.{trigger} changed: roles {', '.join(row.roles) if row.roles else '(the default)'}; "
        f"four eyes {'(the default)' if row.four_eyes is None else 'yes' if row.four_eyes else 'no'}",
    )


@app.command("reset")
def reset_rule(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="The kind.")],
    trigger: Annotated[str, typer.Argument(help="The trigger.")],
) -> None:
    """Back to the machine's own table for one trigger (administrators; audited)."""
    run = of(ctx)
    with Session(run.db(), expire_on_commit=False) as s:
        who = run.acting(s)
        accounts.reset_permission(s, who.principal, who.clock, kind, trigger)
        s.commit()
    run.say({"kind": kind, "trigger": trigger, "reset": True}, f"{kind}.{trigger} follows the machine's table again")
