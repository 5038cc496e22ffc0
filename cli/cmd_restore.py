"""``peerwatch restore FILE``: restore a backup only if its audit chain verifies (docs/scale.md)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import inspect, text
from sqlmodel import Session

from cli.context import of
from models.db import database_url, get_engine
from states.errors import InvalidInput
from states.roles import ADMINISTRATOR
from states.services import accounts
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
    """Restore FILE into the configured database; a backup whose audit chain does not verify is refused, nothing changed.

    Over a database that already has people's accounts, only an administrator of that database
    may restore (it rolls the records back to the backup's day)."""
    url = database_url()
    if has_accounts(url):
        run = of(ctx)
        with Session(get_engine(url)) as s:
            run.principal(s).require(ADMINISTRATOR, "restore a backup over this database")
            training = accounts.is_training(s)
        check_replacement(file, training)
    out = do_restore(url, file, replace=replace)
    of(ctx).say(
        out,
        f"restored {out['restored']} into {out['into']}: audit chain verified ({out['audit_events']} events), "
        f"schema at revision {out['revision']}; {out['sessions_ended']} web session(s) ended (everyone signs in again)",
    )


def has_accounts(url: str) -> bool:
    """Does the database at ``url`` already hold a person's account (not only the system's)?
    A SQLite file that is not there has none (and is not made by asking)."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return False
    engine = get_engine(url)
    try:
        with engine.connect() as conn:
            if "account" not in inspect(conn).get_table_names():
                return False
            return conn.execute(text("SELECT 1 FROM account WHERE status <> 'system' LIMIT 1")).first() is not None
    finally:
        engine.dispose()


def check_replacement(file: Path, live_training: bool) -> None:
    """A backup may replace a database with people's accounts only if its chain is keyed (one
    made without the key proves nothing) and it is the same kind of database (training or not):
    otherwise anyone could forge a database, or turn a real one into a training one."""
    if not file.is_file():
        return  # the restore itself says so
    try:
        with sqlite3.connect(f"file:{file}?mode=ro", uri=True) as con:
            keyed = con.execute("SELECT COUNT(*) FROM auditevent WHERE key_id IS NOT NULL").fetchone()[0]
            row = con.execute("SELECT training FROM installation WHERE id = 1").fetchone()
    except sqlite3.Error as exc:
        raise InvalidInput(
            f"{file} cannot replace a database with accounts: it holds no keyed audit chain ({exc}); nothing was changed"
        ) from None
    if not keyed:
        raise InvalidInput(
            f"{file} has no audit event signed with the key: it cannot replace a database with accounts; nothing was changed"
        )
    if bool(row and row[0]) != live_training:
        kinds = ("a training", "a real") if row and row[0] else ("a real", "a training")
        raise InvalidInput(f"{file} is {kinds[0]} database and this is {kinds[1]} one: nothing was changed")
