"""``peerwatch permissions``: who may fire which trigger, as the engine checks it."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.context import of
from cli.output import print_json, table
from states.engine.permissions import matrix

NAME = "permissions"
app = typer.Typer(
    help="Who may fire which trigger (defaults, with PEERWATCH_PERMISSIONS overrides).", invoke_without_command=True
)


@app.callback()
def show(ctx: typer.Context, kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None) -> None:
    """Print the permission table in force."""
    rows = [r for r in matrix() if kind in (None, r["kind"])]
    if of(ctx).json:
        print_json(rows)
    else:
        table(
            "permissions in force (auditor: read-only)",
            ["kind", "trigger", "roles", "four eyes"],
            [(r["kind"], r["trigger"], ", ".join(r["roles"]), "yes" if r["four_eyes"] else "") for r in rows],
        )
