"""``peerwatch calendar``: the working-day calendar (weekends and each nation's bank holidays)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.context import of
from cli.output import console, print_json
from states.calendar import NATIONS, calendar_for
from states.clock import parse_date

NAME = "calendar"
app = typer.Typer(help="The working-day calendar.", no_args_is_help=True)


@app.command("add-working-days")
def add_working_days(
    ctx: typer.Context,
    start: Annotated[str, typer.Argument(help="YYYY-MM-DD (day 0)")],
    n: Annotated[int, typer.Argument(help="working days")],
    nation: Annotated[str, typer.Option(help="ENG, WLS, SCT or NIR")] = "ENG",
) -> None:
    """The N-th working day after DATE, skipping weekends and the nation's bank holidays."""
    day = parse_date(start)
    cal = calendar_for(nation.upper()) if nation.upper() in NATIONS else calendar_for(nation)
    result = cal.add_working_days(day, n)
    if of(ctx).json:
        print_json({"start": day, "working_days": n, "nation": cal.nation, "due_on": result})
    else:
        console.print(f"{result.isoformat()} ({result.strftime('%A %d %B %Y')})")
