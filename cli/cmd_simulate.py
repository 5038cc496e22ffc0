"""``peerwatch simulate``: what an annual versus a biennial cycle costs a network's team.

Runs the real daily work (programme cycle, chase sweep, dispatch) over synthetic networks in a
database of its own under ``--out`` (never the configured one), and reports the workload per
quarter: a table, ``--json``, and ``workload.png`` / ``workload.csv`` in ``--out``.
Prefect is imported only with ``--prefect`` (the run is then the ``simulate`` flow).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.context import of
from cli.output import console, print_json
from states.clock import parse_date
from states.views.workload import CYCLES, LABELS, MEASURES, cycle_rows

NAME = "simulate"
app = typer.Typer(
    help="Simulate annual and biennial networks over synthetic services; workload per quarter.",
    invoke_without_command=True,
)


@app.callback()
def simulate(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--from", help="First day simulated (YYYY-MM-DD).")] = "2026-04-01",
    end: Annotated[str, typer.Option("--to", help="Last day simulated (YYYY-MM-DD).")] = "2028-03-31",
    networks: Annotated[int, typer.Option(help="Synthetic networks, half annual and half biennial (at least 2).")] = 10,
    services: Annotated[int, typer.Option(help="Services per network (Trusts of ten services each).")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the random behaviour: the same seed gives the same figures.")] = 7,
    out: Annotated[
        Path, typer.Option(help="Folder for simulation.db, workload.png, workload.csv and workload.json.")
    ] = Path("var/simulation"),
    prefect: Annotated[
        bool, typer.Option("--prefect", help="Run it as the Prefect flow 'simulate' (logged in the Prefect UI).")
    ] = False,
) -> None:
    """Walk the networks day by day from --from to --to and print the workload per quarter."""
    from flows.simulation import Settings  # lazy: start-up time (Jinja2, through the dispatcher)

    run = of(ctx)
    settings = Settings(parse_date(start, "--from date"), parse_date(end, "--to date"), networks, services, seed, out)
    settings.check()
    if prefect:
        from flows.simulate import simulate as flow  # lazy: start-up time (Prefect)

        result = flow(start=start, end=end, networks=networks, services=services, seed=seed, out=str(out))
    else:
        result = _run(settings, progress=not run.json)
    if run.json:
        print_json(result)
    else:
        show(result)


def _run(settings: Any, progress: bool) -> dict[str, Any]:
    """The simulation in this process, with a progress bar of days done when on a terminal."""
    from flows.simulation import simulate as run  # lazy: start-up time (Jinja2, through the dispatcher)

    total = (settings.end - settings.start).days + 1
    columns = (
        TextColumn("simulating {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not (progress and console.is_terminal), transient=True) as bar:
        task = bar.add_task(settings.start.isoformat(), total=total)

        def advance(day: date) -> None:
            bar.update(task, advance=1, description=day.isoformat())

        return run(settings, on_day=advance)


def show(result: dict[str, Any]) -> None:
    """The two cycles side by side per quarter (mean per network), then each network's totals."""
    by = result["by_cycle"]
    cycles = [c for c in CYCLES if c in by]
    t = Table(
        title=f"Workload per quarter, mean per network, {result['from']} to {result['to']}: "
        + " | ".join(f"{c} ({by[c]['networks']})" for c in cycles),
        title_justify="left",
    )
    t.add_column("quarter")
    for m in MEASURES:
        t.add_column(f"{m}\n{' | '.join(c[0].upper() for c in cycles)}", justify="center")
    for row in cycle_rows(result):
        t.add_row(
            row["quarter"],
            *(" | ".join(f"{row[f'{m} {c}']:g}" for c in cycles) for m in MEASURES),
            end_section=row["quarter"] == result["quarters"][-1],
        )
    console.print(t)
    console.print("A = annual, B = biennial; " + "; ".join(f"{m}: {LABELS[m]}" for m in MEASURES), markup=False)
    n = Table(title="Each network, whole period", title_justify="left")
    for col in ("cycle", "network", *MEASURES):
        n.add_column(col, justify="left" if col in ("cycle", "network") else "right")
    for c in cycles:
        group = [x for x in result["networks"] if x["cycle"] == c]
        for i, x in enumerate(group):
            n.add_row(c, x["code"], *(str(x["totals"][m]) for m in MEASURES), end_section=i == len(group) - 1)
    console.print(n)
    console.print(
        f"{result['days']} days, {result['audit_events']} transitions, {result['outbox_messages']} outbox messages, "
        f"{result['emails_sent']} emails; {result['seconds']} s",
        markup=False,
    )
    if result["skipped"]:
        console.print(
            f"{len(result['skipped'])} simulated step(s) refused by the engine: see skipped in --json", markup=False
        )
    console.print(
        f"chart {result['files']['chart']}, table {result['files']['csv']}, database {result['database']}", markup=False
    )
