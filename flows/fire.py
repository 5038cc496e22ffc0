"""One manual transition, runnable from the Prefect UI with parameters."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.naming import fire_run_name
from models import init_db
from states import engine
from states.clock import clock_from


@flow(
    name="fire",
    flow_run_name=fire_run_name,
    description="Fire one trigger on one item, as a named actor in a role, with a note.",
)
def fire(
    kind: str,
    item_id: int,
    trigger: str,
    actor: str,
    role: str,
    note: str | None = None,
    expected_version: int | None = None,
    params: dict[str, Any] | None = None,
    as_of: str | None = None,
) -> dict[str, Any]:
    out, _pending = engine.fire_or_record(
        init_db(),
        kind,
        item_id,
        trigger,
        actor=actor,
        role=role,
        clock=clock_from(as_of),
        note=note,
        expected_version=expected_version,
        params=params,
    )
    result = {
        "kind": kind,
        "id": item_id,
        "from": out.event.from_state,
        "to": out.row.state,
        "version": out.event.version,
        "letters_queued": out.queued,
        "proposed": out.proposed,
    }
    get_run_logger().info("%s %s: %s -> %s by %s (%s)", kind, item_id, result["from"], result["to"], actor, role)
    return result
