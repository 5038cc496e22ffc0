"""``peerwatch``: the operator's command line (Typer + Rich).

The root command takes the global options (``--as-of``, ``--json``, ``--as``) into a ``cli.context.Context``
and mounts the command groups: one module per group, ``cli/cmd_<name>.py`` exporting ``NAME`` and
``app``, plus a group of the generic commands for any kind without one. Only the group the line
names is imported (start-up time: each pulls in its kind's machine); help or a typo mounts them all.
Interactive commands never import Prefect: only ``serve`` and ``demo`` do, lazily. The only
imports inside functions in cli/ are those start-up time needs (the group modules, Prefect,
Jinja2, fpdf2, icalendar), each marked ``# lazy: <why>``: ``grep -rn "# lazy:" cli`` lists them.

Every error a user can cause prints one line on stderr and exits 2, with nothing changed (on a
training database the banner that says so comes first). Who is acting is never an option: the
OS account running the command, mapped to a peerwatch account (cli/context.py).
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import sys
from typing import Annotated

import typer
from sqlalchemy.exc import IntegrityError, OperationalError
from typer.exceptions import TyperException

import cli
from cli.context import Context, os_login
from cli.items import kind_app
from cli.output import errors
from models import init_db
from notifications.errors import NotificationError
from states.clock import parse_date
from states.errors import MissingActor, PeerwatchError, PermissionDenied
from states.machines.spec import kinds
from states.services.accounts import record_refused_command

HELP = "peerwatch: peer review and quality surveillance for NHS clinical networks."
# The commands of cli/commands.py, mounted at the top only when one of them is typed (or for help).
ROOT_COMMANDS = ("init", "whoami", "chase", "dispatch", "diagram", "serve", "demo")


def options(
    ctx: typer.Context,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", envvar="PEERWATCH_AS_OF", help="Act as of this date (YYYY-MM-DD), Europe/London."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    as_account: Annotated[
        str | None,
        typer.Option("--as", help="Act as this account (email or OS login): a training database only."),
    ] = None,
) -> None:
    if as_of:
        parse_date(as_of, "--as-of date")
    ctx.obj = Context(as_of=as_of, json=json_out, as_account=as_account)


def group_modules() -> list[str]:
    """Command groups in ``cli/cmd_<name>.py`` (each exports ``app`` and ``NAME`` == name)."""
    return [m.name.removeprefix("cmd_") for m in pkgutil.iter_modules(cli.__path__) if m.name.startswith("cmd_")]


def build(word: str | None) -> typer.Typer:
    """The root command with the groups the line needs: the one it names, or all of them.

    Typer builds the Click command of every mounted group on each call (about 100 commands,
    30 ms), and each group's module imports its kind's machine: mount only what is typed."""
    app = typer.Typer(help=HELP, no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
    app.callback()(options)
    modules = group_modules()
    every = word not in {*ROOT_COMMANDS, *modules, *kinds()}
    if every or word in ROOT_COMMANDS:
        commands = importlib.import_module("cli.commands")  # lazy: start-up time (only when typed)
        app.add_typer(commands.app)
    for name in modules:
        if every or name == word:
            module = importlib.import_module(f"cli.cmd_{name}")  # lazy: start-up time (only the group typed)
            app.add_typer(module.app, name=module.NAME)
    for kind in kinds():
        if (every or kind == word) and kind not in modules:
            app.add_typer(kind_app(kind), name=kind)
    return app


def command_word(args: list[str]) -> str | None:
    """The first word that is not an option or the --as-of or --as value: the command group."""
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a in ("--as-of", "--as"):
            skip = True
        elif not a.startswith("-"):
            return a
    return None


def hoist_globals(argv: list[str]) -> list[str]:
    """Let --json, --as-of and --as go anywhere on the line, as people type them."""
    front, rest, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--json" or arg.startswith(("--as-of=", "--as=")):
            front.append(arg)
        elif arg in ("--as-of", "--as") and i + 1 < len(argv):
            front += [arg, argv[i + 1]]
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors, exit code 2, nothing changed."""
    args = hoist_globals(list(sys.argv[1:] if argv is None else argv))
    try:
        code = build(command_word(args))(args=args, prog_name="peerwatch", standalone_mode=False)
    except (PeerwatchError, NotificationError) as exc:
        if isinstance(exc, PermissionDenied | MissingActor) and not getattr(exc, "recorded", False):
            record_refused(args, str(exc))
        fail(str(exc))
    except TyperException as exc:  # Typer's usage errors (its Click's ClickException and subclasses)
        context = getattr(exc, "ctx", None)  # a usage error knows the command it is about
        if type(exc).__name__ == "NoArgsIsHelpError":  # a group typed alone: its help (no_args_is_help)
            print(context.get_help() if context is not None else "peerwatch --help")
            raise SystemExit(0) from None
        if hasattr(exc, "ctx"):
            where = f" ({context.command_path})" if context is not None else ""
            fail(f"{exc.format_message()}{where}; see --help")
        fail(exc.format_message())
    except typer.Abort:
        fail("aborted")
    except IntegrityError as exc:
        fail(f"that would duplicate or orphan a record: {str(exc.orig).splitlines()[0]}")
    except OperationalError as exc:
        fail(f"database: {str(exc.orig).splitlines()[0]}")
    except OverflowError as exc:  # a number beyond the database's integers (ids are 64-bit), or a date past 9999
        fail(f"a number or date given is out of range ({exc}): check it; nothing was changed")
    raise SystemExit(code if isinstance(code, int) else 0)


def run() -> None:
    """The console script: ``main``, then leave without the interpreter's teardown.

    By then everything is committed and printed; freeing every module's objects on the way out
    (SQLAlchemy, pydantic) costs about 0.2 s, a third of a ``peerwatch risk show``. Commands
    that ran Prefect (its workers flush logs and events at exit) and unexpected errors (their
    traceback) leave the normal way."""
    try:
        main()
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    if "prefect" in sys.modules:
        raise SystemExit(code)
    if isinstance(code, str):  # SystemExit("message"): printed, status 1, as Python does
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def fail(message: str) -> None:
    """One line on stderr, exit 2."""
    errors.print(f"error: {' '.join(message.split())}", markup=False, soft_wrap=True)
    raise SystemExit(2)


def record_refused(args: list[str], reason: str) -> None:
    """Record a refusal the engine did not see (who is acting, or whether they may): with the
    OS login and the command's first two words (never its values: a note may be private)."""
    words, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in ("--as-of", "--as"):
            skip = True
        elif not a.startswith("-"):
            words.append(a)
    words = words[:2]
    try:
        record_refused_command(init_db(), os_login(), " ".join(words) or "peerwatch", reason)
    except Exception as exc:
        errors.print(f"(the refusal could not be recorded: {exc.__class__.__name__})", markup=False)
