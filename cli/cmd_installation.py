"""``peerwatch installation``: this installation's settings; today its service account.

The service account is the OS login that owns the database and the audit key; people run the
command line through ``sudo -u <it> peerwatch ...`` and peerwatch knows them by the uid sudo
names (states/services/installation.py). ``peerwatch init --service-account NAME`` names it on
a new installation; an administrator changes or clears it here, each change an audited event.
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import Session

from cli.context import of
from models.installation import ROW_ID, Installation, installation_id
from states.clock import parse_date
from states.errors import InvalidInput
from states.services import accounts, clocks, installation

NAME = "installation"
app = typer.Typer(
    help="This installation: its id, training mark and service account (administrators change it).",
    no_args_is_help=True,
)


@app.command("show")
def show(ctx: typer.Context) -> None:
    """The installation's id, whether it is a training database, and its service account."""
    run = of(ctx)
    with Session(run.db()) as s:
        installation_id(s)
        row = s.get(Installation, ROW_ID)
        assert row is not None
        data = {
            "installation_id": row.installation_id,
            "created_at": row.created_at,
            "training": accounts.is_training(s),
            "service_account": row.service_account,
            "training_today": clocks.training_today(s),
        }
    run.say(
        data,
        f"installation {data['installation_id']}, created {data['created_at']:%Y-%m-%d}"
        + (", a training database" if data["training"] else "")
        + (f" standing at {data['training_today']:%a %d %b %Y}" if data["training_today"] else "")
        + (
            f"; service account {data['service_account']} (staff run peerwatch through sudo -u {data['service_account']})"
            if data["service_account"]
            else "; no service account (each person runs peerwatch as themselves)"
        ),
    )


@app.command("service-account")
def service_account(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="The OS login that owns the database and the audit key (none: show it).")
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="No service account: each person runs peerwatch as themselves.")
    ] = False,
) -> None:
    """Show, name or clear the service account people reach through sudo (administrators change it)."""
    run = of(ctx)
    if name is not None and clear:
        raise InvalidInput("give a service account or --clear, not both; nothing was changed")
    with Session(run.db(), expire_on_commit=False) as s:
        if name is None and not clear:
            current = installation.service_account(s)
            run.say(
                {"service_account": current},
                f"service account: {current}"
                if current
                else "no service account: each person runs peerwatch as themselves",
            )
            return
        who = run.acting(s)
        changed = installation.set_service_account(s, who.principal, who.clock, None if clear else name)
        now = installation.service_account(s)
        s.commit()
    if now:
        line = f"service account: {now}" + ("" if changed else " (unchanged)")
        line += f"; staff run peerwatch through sudo -u {now}, and it alone reads the database and the audit key"
    else:
        line = "no service account" + ("" if changed else " (unchanged)") + ": each person runs peerwatch as themselves"
    run.say({"service_account": now, "changed": changed}, line)


@app.command("training-day")
def training_day(
    ctx: typer.Context,
    day: Annotated[str | None, typer.Argument(help="YYYY-MM-DD: the day the training database stands at.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Back to the real clock.")] = False,
) -> None:
    """Show or move the day a training database stands at: with no --as-of, its actions (the web
    application's too) and runs happen on that day. Refused on any other database."""
    run = of(ctx)
    if day is not None and clear:
        raise InvalidInput("give a day or --clear, not both; nothing was changed")
    with Session(run.db(), expire_on_commit=False) as s:
        if day is None and not clear:
            current = clocks.training_today(s)
            run.say(
                {"training_today": current},
                f"this training database stands at {current:%a %d %b %Y}" if current else "it runs on the real clock",
            )
            return
        new = None if clear else parse_date(day or "", "training day")
        who = run.acting(s)
        clocks.set_training_today(s, who.principal, who.clock, new)
        s.commit()
    run.say({"training_today": new}, f"it stands at {new:%a %d %b %Y}" if new else "it runs on the real clock")
