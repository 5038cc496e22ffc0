"""The daily programme-cycle flow: plan each network's programme year, open phases on their
dates, send the requests and advance notifications they call for, chase what is overdue.

It acts as the built-in system principal (``states.engine.system``): the opening steps are
audited as ``system``, never as a person; ``as_of`` may be a past date, never a future one
outside a training database (flows/run_clock.py)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from sqlmodel import Session, select

from flows import collisions
from flows.artifacts import publish_cycle_status
from flows.naming import as_of as run_name
from flows.run_clock import sweep_clock
from models import Network, init_db, session_scope
from states.clock import local_date
from states.engine.sweep import run_sweep
from states.engine.system import SYSTEM_PRINCIPAL
from states.programmes import programme_year_of
from states.services.cycle import plan_year


@flow(
    name="cycle",
    flow_run_name=run_name("cycle"),
    description="Plan programme years, open phases, request documents, chase what is overdue.",
)
def cycle(as_of: str | None = None) -> dict[str, Any]:
    logger = get_run_logger()
    clock = sweep_clock(as_of)
    day = local_date(clock.now())
    db = init_db()
    planned = {}
    with session_scope() as s:
        for net in s.exec(select(Network).order_by(Network.id)):  # type: ignore[arg-type]
            planned[net.code] = plan_year(s, net, programme_year_of(day), clock, principal=SYSTEM_PRINCIPAL)
    summary = run_sweep(db, clock)
    for a in summary.actions:
        logger.info("%s %s: %s (%s due %s)", a["kind"], a["id"], a["action"], a["deadline"], a["due_on"])
    for k in summary.skipped:
        logger.warning("skipped %s %s (%s): %s", k["kind"], k["id"], k.get("step", ""), k["reason"])
    with Session(db) as s:
        publish_cycle_status(s, day)
    collisions.report(logger)
    return {
        "as_of": day.isoformat(),
        "planned": planned,
        "actions": len(summary.actions),
        "skipped": len(summary.skipped),
        "skipped_items": summary.skipped,
    }
