"""What every command is given: the global options (``--as-of``, ``--json``, ``--as``), the clock
they set, the database, who is acting, and printing that follows ``--json``.

Who is acting is found as PostgreSQL's ``peer`` method does: the OS account running the command
(its effective uid's login name, never an environment variable) maps to a peerwatch account;
no mapping, no write. Through sudo to the service account the database names (and only then)
the person is the one sudo says ran it, ``SUDO_UID`` (states/services/installation.py).
``--as ACCOUNT`` acts as another account in a training database only.

The root callback (cli/app.py) makes one ``Context`` per invocation and keeps it in Click's
``ctx.obj``; a command takes ``ctx: typer.Context`` and reads it with ``of(ctx)``. Nothing is
kept in a module global, so two invocations in one process never see each other's options.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

import typer
from sqlalchemy import Engine
from sqlmodel import Session

from cli.output import console, errors, print_json, table
from models import init_db
from states.clock import Clock, clock_from, local_date
from states.principal import Principal
from states.services import accounts, clocks, installation

ROLE = Annotated[
    str | None,
    typer.Option(help="Act in this one of your roles, when more than one of them may (see peerwatch whoami)."),
]
TRAINING_BANNER = "TRAINING DATABASE: simulated dates and accounts; its letters are never sent"


@dataclass(frozen=True)
class Acting:
    """Who acts in one command, and the clock the action runs on."""

    principal: Principal
    clock: Clock


def os_login() -> str:
    """The login name of the effective uid running this process (not $USER, which anyone sets)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid-{os.geteuid()}"


def sudo_uid() -> str | None:
    """``SUDO_UID`` as sudo set it: believed only when this process runs as the service account
    the database names (``installation.peer_login``); anyone may set it in their own shell."""
    return os.environ.get("SUDO_UID")


@dataclass(frozen=True)
class Context:
    """The options of one invocation."""

    as_of: str | None = None
    json: bool = False
    as_account: str | None = None  # --as: a training database only

    def clock(self) -> Clock:
        """For reading: ``--as-of`` if given, else ``PEERWATCH_AS_OF``, else the system clock.
        An action takes its clock from ``acting`` (the server's, outside a training database)."""
        return clock_from(self.as_of)

    def principal(self, session: Session, role: str | None = None) -> Principal:
        """Who is running this command (peer authentication, through sudo to the service account,
        or ``--as`` in a training database), whatever the clock: for commands that act on no
        date (``whoami``, a token of one's own)."""
        if self.as_account:
            return accounts.training_principal(session, self.as_account, role or None)
        return installation.peer_principal(session, os_login(), sudo_uid(), role or None)

    def acting(self, session: Session, role: str | None = None) -> Acting:
        """Who acts (peer authentication, or ``--as`` in a training database) and on which clock
        (now; ``--as-of`` only in a training database). Refuses before anything is changed."""
        principal = self.principal(session, role)
        return Acting(principal, clocks.action_clock(session, self.as_of))

    def flow_clock(self, session: Session) -> Clock:
        """The clock of a sweep or dispatch run from the command line: now, or a past date."""
        return clocks.flow_clock(session, self.as_of)

    def today(self) -> date:
        """The clock's date in Europe/London."""
        return local_date(self.clock().now())

    def db(self) -> Engine:
        """The database, brought to the newest migration; a training database says so on stderr."""
        eng = init_db()
        with Session(eng) as s:
            if accounts.is_training(s):
                errors.print(TRAINING_BANNER, markup=False, highlight=False)
        return eng

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
