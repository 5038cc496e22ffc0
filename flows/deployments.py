"""Build the deployments declared in prefect.yaml and serve them from this process."""

from __future__ import annotations

import importlib
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig
from prefect.schedules import Cron, Interval, RRule, Schedule

PREFECT_YAML = Path(__file__).resolve().parent.parent / "prefect.yaml"


def load_spec(path: Path = PREFECT_YAML) -> list[dict[str, Any]]:
    return list(yaml.safe_load(path.read_text())["deployments"])


def schedule(s: dict[str, Any]) -> Schedule:
    """One entry of a deployment's ``schedules`` in prefect.yaml: ``cron``, ``interval`` (seconds,
    with an optional ``anchor_date``) or ``rrule``; in Europe/London unless it says otherwise."""
    timezone = s.get("timezone", "Europe/London")
    active = bool(s.get("active", True))
    if "cron" in s:
        return Cron(s["cron"], timezone=timezone, active=active)
    if "interval" in s:
        anchor = s.get("anchor_date")
        anchor = datetime.fromisoformat(anchor) if isinstance(anchor, str) else anchor
        return Interval(timedelta(seconds=float(s["interval"])), anchor_date=anchor, timezone=timezone, active=active)
    if "rrule" in s:
        return RRule(s["rrule"], timezone=timezone, active=active)
    raise ValueError(f"prefect.yaml: a schedule needs cron, interval or rrule: {s!r}")


def build(path: Path = PREFECT_YAML) -> list[Any]:
    deployments = []
    for d in load_spec(path):
        module, _, name = d["entrypoint"].partition(":")
        flow = getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), name)
        limit = d.get("concurrency_limit")
        deployments.append(
            flow.to_deployment(
                name=d["name"],
                description=d.get("description"),
                tags=d.get("tags"),
                parameters=d.get("parameters") or {},
                schedules=[schedule(s) for s in d.get("schedules") or []],
                concurrency_limit=ConcurrencyLimitConfig(**limit) if isinstance(limit, dict) else limit,
            )
        )
    return deployments


def serve_all(path: Path = PREFECT_YAML) -> None:
    if not os.environ.get("PREFECT_API_URL"):
        print(
            "peerwatch serve needs a Prefect server: start one with `prefect server start` and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api (see README, 'Running the schedules')."
        )
        raise SystemExit(2)
    serve(*build(path))


if __name__ == "__main__":  # python -m flows.deployments [prefect.yaml]: what `peerwatch serve` does, for another file
    import sys

    serve_all(Path(sys.argv[1]) if len(sys.argv) > 1 else PREFECT_YAML)
