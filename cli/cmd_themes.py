"""``peerwatch themes``: shared learning across services (002 s3.5, s3.7). Read-only; no names of people."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import Session

from cli.context import of
from cli.output import console, print_json, table
from states.views.themes import shared_learning

NAME = "themes"
app = typer.Typer(
    help="Shared learning: concerns and good practice by standard and theme, across services and networks.",
    invoke_without_command=True,
)


@app.callback()
def themes(
    ctx: typer.Context,
    network: Annotated[str | None, typer.Option(help="Only this network (code, e.g. WMTN).")] = None,
) -> None:
    """Print concerns and good practice by theme and by standard (use the global --json for JSON)."""
    run = of(ctx)
    with Session(run.db()) as s:
        result = shared_learning(s, network)
    if run.json:
        print_json(result)
        return
    where = f"network {network}" if network else "all networks"
    console.print(
        f"shared learning, {where}: {result['concerns']} concern(s), {result['good_practice']} good practice item(s)",
        markup=False,
    )
    for by in ("theme", "standard"):
        rows = result[f"by_{by}"]
        concerns = [r for r in rows if r["type"] == "concern"]
        practice = [r for r in rows if r["type"] == "good_practice"]
        if concerns:
            table(
                f"concerns by {by}",
                [by, "n", "IR/SC/GC", "open/closed", "days median/mean", "services", "networks"],
                [
                    (
                        r["key"],
                        r["count"],
                        f"{r['ir']}/{r['sc']}/{r['gc']}",
                        f"{r['open']}/{r['closed']}",
                        "-" if r["median_days"] is None else f"{r['median_days']}/{r['mean_days']}",
                        r["services"],
                        ", ".join(r["networks"]),
                    )
                    for r in concerns
                ],
            )
        if practice:
            table(
                f"good practice by {by}",
                [by, "n", "services", "networks"],
                [(r["key"], r["count"], r["services"], ", ".join(r["networks"])) for r in practice],
            )
