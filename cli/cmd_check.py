"""``peerwatch check``: find stored rows a letter, a file name or a calendar line would break on.

Rows stored before the entry rule (states/text.py) may hold a control character, a Unicode
line or paragraph separator, or an address email-validator refuses. Each is listed (table, id,
field, problem, the value escaped); the command exits 1 if any is found, 0 if none. A contact
replaced or retired by today is history and not listed (fix a contact with ``contact edit``).
"""

from __future__ import annotations

import typer
from sqlmodel import Session

from cli.context import of
from cli.output import console, errors, print_json, table
from states.text import scan

NAME = "check"
app = typer.Typer(help="Find stored names, titles and addresses that would break a letter, file name or calendar line.")


@app.callback(invoke_without_command=True)
def check(ctx: typer.Context) -> None:
    """List every stored value the entry rule refuses (exit 1 if any)."""
    run = of(ctx)
    with Session(run.db()) as s:
        found = list(scan(s, run.today()))
    if run.json:
        print_json({"ok": not found, "problems": found})
    elif found:
        table(
            f"stored values that would break a letter, file name or calendar line ({len(found)})",
            ["table", "id", "field", "problem", "value"],
            [(f["table"], f["id"], f["field"], f["problem"], f["value"]) for f in found],
        )
        errors.print(
            f"{len(found)} stored value(s) need correcting (peerwatch contact edit, or by hand): see the table above",
            markup=False,
        )
    else:
        console.print("check: every stored name, title and address is one clean line")
    if found:
        raise typer.Exit(1)
