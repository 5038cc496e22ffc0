"""``peerwatch backup FILE``: a backup of the configured database (docs/scale.md, "Backup and restore").

SQLite: the online backup API, one consistent snapshot while the sweeps go on; PostgreSQL:
``pg_dump`` of the URL's schema. The copy's audit chain is verified. ``peerwatch restore``
(cli/cmd_restore.py) brings one back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

NAME = "backup"
app = typer.Typer(help="Back up the database (SQLite online backup API; pg_dump on PostgreSQL).", no_args_is_help=True)


def say(out: dict[str, object], line: str) -> None:
    from cli.main import OPTS
    from cli.output import console, print_json

    if OPTS.json:
        print_json(out)
    else:
        console.print(line, markup=False, highlight=False)


@app.callback(invoke_without_command=True)
def backup(file: Annotated[Path, typer.Argument(help="The backup file to write (never overwritten).")]) -> None:
    """Write a backup of the database to FILE; the copy's audit chain is verified."""
    from models.db import database_url
    from states.services.backup import backup as do_backup

    out = do_backup(database_url(), file)
    events = f", audit chain verified ({out['audit_events']} events)" if "audit_events" in out else ""
    say(out, f"backup written: {out['backup']} ({out['bytes']} bytes, {out['database']}{events})")
