"""Scheduled runs a sweeper's concurrency limit cancelled, said out loud.

The sweepers in prefect.yaml run one at a time (limit 1, ``CANCEL_NEW``): a run due while
another is still going (a catch-up after downtime, a slow morning) is cancelled by the Prefect
server with "Deployment concurrency limit reached." and shows only as CANCELLED. Each sweeper
run, when it ends, looks for such runs of its own deployment since the last run that finished,
logs a warning for each naming when it was due and the command that runs it now, and the chase
puts the same lines in its run summary. Nothing is said when the flow is not run from a
deployment (called directly, the CLI).
"""

from __future__ import annotations

import inspect
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.context import FlowRunContext

from states.clock import local_date, show

LIMIT_MESSAGE = "concurrency limit"
LOOKBACK = timedelta(days=1)  # when no run of the deployment has finished yet


def cancelled_by_the_limit() -> list[dict[str, Any]]:
    """This deployment's runs the concurrency limit cancelled since its last finished run."""
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None or ctx.flow_run.deployment_id is None:
        return []
    me = ctx.flow_run
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(me.deployment_id)
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[me.deployment_id]),
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(
                        any_=[StateType.CANCELLED, StateType.COMPLETED, StateType.FAILED, StateType.CRASHED]
                    )
                ),
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=200,
        )
    finished = [
        r.end_time
        for r in runs
        if r.id != me.id
        and r.end_time is not None
        and r.state_type in (StateType.COMPLETED, StateType.FAILED, StateType.CRASHED)
    ]
    since = max(finished, default=datetime.now(UTC) - LOOKBACK)
    takes_as_of = "as_of" in inspect.signature(ctx.flow.fn).parameters
    out = []
    for r in runs:
        message = (r.state.message or "") if r.state else ""
        when = r.state.timestamp if r.state else None
        if r.state_type != StateType.CANCELLED or LIMIT_MESSAGE not in message.lower() or when is None or when < since:
            continue
        due = r.expected_start_time or r.created
        command = f"prefect deployment run '{ctx.flow.name}/{deployment.name}'"
        if takes_as_of and due is not None and not (me.parameters or {}).get("as_of"):
            command += f" --param as_of={local_date(due).isoformat()}"
        out.append({"run": r.name, "due": due, "command": command})
    return out


def report(logger: logging.Logger | logging.LoggerAdapter[Any]) -> list[str]:
    """Log a warning per run cancelled by the limit; return the lines (for a run summary)."""
    try:
        found = cancelled_by_the_limit()
    except Exception as exc:  # the sweep's own work is done: a failed look-up must not fail it
        logger.warning("could not check for runs cancelled by the concurrency limit: %s", exc)
        return []
    lines = []
    for c in found:
        due = show(c["due"]) if c["due"] is not None else "?"
        lines.append(
            f"Run {c['run']} (due {due}) was CANCELLED because a run of this deployment was still going "
            f"(concurrency limit 1, CANCEL_NEW): it did not run. To run it now: {c['command']}"
        )
        logger.warning(lines[-1])
    return lines
