"""Build the deployments declared in prefect.yaml and serve them from this process."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import yaml
from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig
from prefect.schedules import Cron

PREFECT_YAML = Path(__file__).resolve().parent.parent / "prefect.yaml"


def load_spec(path: Path = PREFECT_YAML) -> list[dict[str, Any]]:
    return list(yaml.safe_load(path.read_text())["deployments"])


def build(path: Path = PREFECT_YAML) -> list[Any]:
    deployments = []
    for d in load_spec(path):
        module, _, name = d["entrypoint"].partition(":")
        flow = getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), name)
        limit = d.get("concurrency_limit")
        deployments.append(flow.to_deployment(
            name=d["name"],
            description=d.get("description"),
            tags=d.get("tags"),
            parameters=d.get("parameters") or {},
            schedules=[Cron(s["cron"], timezone=s.get("timezone", "Europe/London")) for s in d.get("schedules") or []],
            concurrency_limit=ConcurrencyLimitConfig(**limit) if isinstance(limit, dict) else limit,
        ))
    return deployments


def serve_all() -> None:
    if not os.environ.get("PREFECT_API_URL"):
        print("peerwatch serve needs a Prefect server: start one with `prefect server start` and set "
              "PREFECT_API_URL=http://127.0.0.1:4200/api (see README, 'Running the schedules').")
        raise SystemExit(2)
    serve(*build())
