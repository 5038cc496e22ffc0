"""What every command is given: the global options (``--as-of``, ``--json``), the clock they set,
the database, and printing that follows ``--json``.

The root callback (cli/app.py) makes one ``Context`` per invocation and keeps it in Click's
``ctx.obj``; a command takes ``ctx: typer.Context`` and reads it with ``of(ctx)``. Nothing is
kept in a module global, so two invocations in one process never see each other's options.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

import typer
from sqlalchemy import Engine

from cli.output import console, print_json, table
from models import init_db
from states.clock import Clock, clock_from, local_date

ACTOR = Annotated[str, typer.Option(help="Who is acting.")]
ROLE = Annotated[str, typer.Option(help="Actor role: network-office, network-manager, regional-lead, operator.")]
ACTOR_DEFAULT = Annotated[
    str | None, typer.Option(help="Who is recording it (default: $PEERWATCH_ACTOR, else your login name).")
]


@dataclass(frozen=True)
class Context:
    """The options of one invocation."""

    as_of: str | None = None
    json: bool = False

    def clock(self) -> Clock:
        """``--as-of`` if given, else ``PEERWATCH_AS_OF``, else the system clock."""
        return clock_from(self.as_of)

    def today(self) -> date:
        """The clock's date in Europe/London."""
        return local_date(self.clock().now())

    def db(self) -> Engine:
        """The database, brought to the newest migration."""
        return init_db()

    def say(self, data: Any, line: str) -> None:
        """``data`` as JSON with ``--json``, else ``line``."""
        if self.json:
            print_json(data)
        else:
            console.print(line, markup=False, highlight=False)

    def created(self, what: str, new_id: int | None, **extra: Any) -> None:
        """What was created: its id (and state and deadlines, when given)."""
        if self.json:
            print_json({"id": new_id, **extra})
        else:
            console.print(f"{what} {new_id} created" + (f", state {extra['state']}" if "state" in extra else ""))
            for d in extra.get("deadlines", []):
                console.print(f"  {d['name']} due {d['due_on']}")

    def rows(self, title: str, cols: list[str], rows: list[tuple[Any, ...]]) -> None:
        """A table, or with ``--json`` a list of objects."""
        if self.json:
            print_json([dict(zip(cols, r)) for r in rows])
        else:
            table(title, cols, rows)


def of(ctx: typer.Context) -> Context:
    """The invocation's ``Context`` (the defaults when a command runs without the root callback)."""
    found = ctx.find_object(Context)
    return found if found is not None else Context()


def who(actor: str | None) -> str:
    """The actor of a change made at the command line: --actor, else $PEERWATCH_ACTOR, else the
    login name of the person running it (recorded in the audit trail)."""
    if actor is not None:
        return actor
    try:
        return os.environ.get("PEERWATCH_ACTOR") or getpass.getuser()
    except (OSError, KeyError):
        return ""
