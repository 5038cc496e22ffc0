"""``peerwatch submission``: documents Trusts submit (annual report, work plan, operational policy);
show, list, fire and history are the generic ones."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.context import ROLE, of
from cli.items import add_item_commands, fire_and_print

NAME = "submission"
app = typer.Typer(help="Document submissions from each Trust, with evidence files and checksums.", no_args_is_help=True)


@app.command("receive")
def receive(
    ctx: typer.Context,
    submission_id: Annotated[int, typer.Argument(help="submission id")],
    file: Annotated[str, typer.Option(help="The evidence file received.")],
    role: ROLE = None,
) -> None:
    """Record a received document; the file is stored with its SHA-256 checksum as a new version."""
    fire_and_print(of(ctx), "submission", submission_id, "receive", role=role, note=None, params={"file": file})


add_item_commands(app, NAME)
