"""The workload simulation as a Prefect flow: a thin wrapper of ``flows.simulation.simulate``.

Logs the simulated date at each quarter and publishes the per-quarter means, annual and
biennial side by side, as the table artifact ``simulation-workload``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.naming import simulate_run_name
from flows.simulation import Settings
from flows.simulation import simulate as run
from states.clock import parse_date
from states.views.workload import cycle_rows


@flow(
    name="simulate",
    flow_run_name=simulate_run_name,
    description="Simulate annual and biennial networks over synthetic services; workload per quarter.",
)
def simulate(
    start: str = "2026-04-01",
    end: str = "2028-03-31",
    networks: int = 10,
    services: int = 200,
    seed: int = 7,
    out: str = "var/simulation",
) -> dict[str, Any]:
    logger = get_run_logger()
    settings = Settings(
        parse_date(start, "start date"), parse_date(end, "end date"), networks, services, seed, Path(out)
    )

    def quarter(day: date) -> None:
        if day.day == 1 and day.month in (1, 4, 7, 10):
            logger.info("simulated up to %s", day.isoformat())

    result = run(settings, on_day=quarter)
    create_table_artifact(
        key="simulation-workload",
        table=cycle_rows(result),
        description=f"Workload per quarter, mean per network, {start} to {end}: annual vs biennial",
    )
    logger.info(
        "%d days in %.1f s: %d transitions, %d outbox messages; chart %s",
        result["days"],
        result["seconds"],
        result["audit_events"],
        result["outbox_messages"],
        result["files"]["chart"],
    )
    return result
