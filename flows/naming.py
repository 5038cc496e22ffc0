"""Flow run names that say what the run did, for the Prefect UI ("chase as of 2027-03-19")
instead of Prefect's random ones ("aloof-mouse").

Each flow passes one of these as ``flow_run_name``; Prefect calls it when the run starts, with
the run's parameters in its context. The date is the one the run works to: its ``as_of``
parameter, else ``PEERWATCH_AS_OF``, else today in Europe/London (states/clock.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from prefect.context import FlowRunContext

from states.clock import clock_from, local_date


def _parameters() -> dict[str, Any]:
    """The run's parameters, over the flow's defaults."""
    ctx = FlowRunContext.get()
    if ctx is None:
        return {}
    defaults = {
        k: v.default
        for k, v in inspect.signature(ctx.flow.fn).parameters.items()
        if v.default is not inspect.Parameter.empty
    }
    return {**defaults, **(ctx.parameters or {})}


def _day(as_of: Any) -> str:
    try:
        return local_date(clock_from(as_of).now()).isoformat()
    except Exception:  # a bad as_of fails the run itself with its own clear error; the name just shows it
        return str(as_of)


def as_of(flow: str) -> Callable[[], str]:
    """``"<flow> as of <date>"`` for the flows that work to a date (chase, dispatch, cycle, views)."""

    def name() -> str:
        return f"{flow} as of {_day(_parameters().get('as_of'))}"

    name.__name__ = f"{flow}_run_name"
    return name


def fire_run_name(actor: str | None = None, role: str | None = None) -> str:
    """``"fire <trigger> on <kind> <id> as of <date>"``; once the run knows who acted (the owner
    of its access token), ``"... by <name> (<role>) as of <date>"``. Never the token."""
    p = _parameters()
    by = f" by {actor} ({role})" if actor else ""
    return f"fire {p.get('trigger')} on {p.get('kind')} {p.get('item_id')}{by} as of {_day(p.get('as_of'))}"


def themes_run_name() -> str:
    network = _parameters().get("network")
    return f"themes for {f'network {network}' if network else 'all networks'} as of {_day(None)}"


def simulate_run_name() -> str:
    p = _parameters()
    return f"simulate {p.get('start')} to {p.get('end')}: {p.get('networks')} networks, {p.get('services')} services, seed {p.get('seed')}"
