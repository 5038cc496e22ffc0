"""``peerwatch restore FILE``: restore a backup only if its audit chain verifies (docs/scale.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.context import of
from models.db import database_url
from states.services.backup import restore as do_restore

NAME = "restore"
app = typer.Typer(
    help="Restore a backup into the configured database, after verifying its audit chain.", no_args_is_help=True
)


@app.callback(invoke_without_command=True)
def restore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The backup file (from peerwatch backup).")],
    replace: Annotated[
        bool, typer.Option("--replace", help="SQLite: overwrite a database that already holds data.")
    ] = False,
) -> None:
    """Restore FILE into the configured database; a backup whose audit chain does not verify is refused, nothing changed."""
    out = do_restore(database_url(), file, replace=replace)
    of(ctx).say(
        out,
        f"restored {out['restored']} into {out['into']}: audit chain verified ({out['audit_events']} events), "
        f"schema at revision {out['revision']}",
    )
