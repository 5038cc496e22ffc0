"""``peerwatch submission``: documents Trusts submit (annual report, work plan, operational policy)."""

from __future__ import annotations

from typing import Annotated

import typer

NAME = "submission"
app = typer.Typer(help="Document submissions from each Trust, with evidence files and checksums.", no_args_is_help=True)


@app.command("receive")
def receive(
    submission_id: Annotated[int, typer.Argument(help="submission id")],
    file: Annotated[str, typer.Option(help="The evidence file received.")],
    actor: Annotated[str, typer.Option(help="Who is acting.")] = "",
    role: Annotated[str, typer.Option(help="Actor role.")] = "network-office",
) -> None:
    """Record a received document; the file is stored with its SHA-256 checksum as a new version."""
    from cli.main import _fire_and_print

    _fire_and_print("submission", submission_id, "receive", actor, role, None, {"file": file})
