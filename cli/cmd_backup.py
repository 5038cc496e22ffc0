"""``peerwatch backup FILE``: a backup of the configured database (docs/scale.md, "Backup and restore").

SQLite: the online backup API, one consistent snapshot while the sweeps go on; PostgreSQL:
``pg_dump`` of the URL's schema. The copy's audit chain is verified. ``peerwatch restore``
(cli/cmd_restore.py) brings one back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from cli.context import of
from models.db import database_url
from states.roles import ADMINISTRATOR, OPERATOR
from states.services.backup import backup as do_backup

NAME = "backup"
app = typer.Typer(help="Back up the database (SQLite online backup API; pg_dump on PostgreSQL).", no_args_is_help=True)


@app.callback(invoke_without_command=True)
def backup(
    ctx: typer.Context, file: Annotated[Path, typer.Argument(help="The backup file to write (never overwritten).")]
) -> None:
    """Write a backup of the database to FILE; the copy's audit chain is verified. An operator's
    or an administrator's act (the copy holds every record)."""
    run = of(ctx)
    with Session(run.db()) as s:
        run.principal(s).require_any((OPERATOR, ADMINISTRATOR), "back up the database")
    out = do_backup(database_url(), file)
    events = f", audit chain verified ({out['audit_events']} events)" if "audit_events" in out else ""
    of(ctx).say(out, f"backup written: {out['backup']} ({out['bytes']} bytes, {out['database']}{events})")
