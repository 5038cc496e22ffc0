"""``peerwatch token``: personal access tokens for the Prefect ``fire`` flow (and, later, the API).

A token acts as its owner, with the owner's grants as they are when it is used; it is shown
once, only its hash is kept, it expires (90 days unless ``--days``) and can be revoked. Each
person manages their own; an administrator may revoke anyone's.
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import Session

from cli.context import of
from cli.output import console
from states.services import accounts

NAME = "token"
app = typer.Typer(help="Personal access tokens (the Prefect fire flow acts as their owner).", no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="What the token is for (shown in token list).")],
    days: Annotated[
        int, typer.Option(help=f"Days until it expires (1 to {accounts.MAX_TOKEN_DAYS}).")
    ] = accounts.DEFAULT_TOKEN_DAYS,
    purpose: Annotated[
        str,
        typer.Option(help="api: the API and the fire flow; feed: calendar subscriptions in the web application only."),
    ] = "api",
) -> None:
    """Create a token for your own account: printed once, never shown again."""
    run = of(ctx)
    with Session(run.db(), expire_on_commit=False) as s:
        who = run.acting(s)
        row, token = accounts.create_token(s, who.principal, who.clock, name, days, purpose)
        s.commit()
    data = {"id": row.id, "name": row.name, "token": token, "purpose": row.purpose, "expires_at": row.expires_at,
            "owner": who.principal.name}  # fmt: skip
    if run.json:
        run.say(data, "")
        return
    console.print(f"token {row.id} ({row.name}) for {who.principal.name}, expires {row.expires_at:%Y-%m-%d %H:%M} UTC:")
    console.print(token, markup=False, highlight=False, soft_wrap=True)
    console.print("it is shown this once (only its hash is kept): store it now; peerwatch token revoke ID ends it")


@app.command("list")
def list_tokens(ctx: typer.Context) -> None:
    """Your tokens (never the tokens themselves: their first characters)."""
    run = of(ctx)
    with Session(run.db()) as s:
        rows = accounts.tokens(s, run.principal(s))
    run.rows(
        f"tokens ({len(rows)})",
        ["id", "name", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at"],
        [
            tuple(r[c] for c in ("id", "name", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at"))
            for r in rows
        ],
    )


@app.command("revoke")
def revoke(ctx: typer.Context, token_id: Annotated[int, typer.Argument(help="The token's id (token list).")]) -> None:
    """Revoke a token of yours (an administrator: anyone's). It stops working at once."""
    run = of(ctx)
    with Session(run.db(), expire_on_commit=False) as s:
        who = run.acting(s)
        row = accounts.revoke_token(s, who.principal, who.clock, token_id)
        s.commit()
    run.say({"id": row.id, "revoked_at": row.revoked_at}, f"token {row.id} ({row.name}) revoked")
