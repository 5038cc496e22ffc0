"""Shared learning themes as a Prefect flow, publishing the table as an artifact."""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.exceptions import MissingContextError
from sqlmodel import Session

from flows import collisions
from flows.naming import themes_run_name
from models import init_db
from states.views.themes import shared_learning, table_rows

ARTIFACT_KEY = "shared-learning-themes"


@flow(
    name="themes",
    flow_run_name=themes_run_name,
    description="Concerns and good practice by standard and theme across services and networks (no names of people).",
)
def themes(network: str | None = None) -> dict[str, Any]:
    """Aggregate the themes (states/views/themes.py) and publish them as the table artifact."""
    with Session(init_db()) as s:
        result = shared_learning(s, network)
    rows = table_rows(result)
    where = f"network {network}" if network else "all networks"
    description = (
        f"Shared learning, {where}: {result['concerns']} concern(s), {result['good_practice']} good practice item(s)"
    )
    if rows:
        create_table_artifact(key=ARTIFACT_KEY, table=rows, description=description)
    else:
        create_markdown_artifact(
            key=ARTIFACT_KEY,
            markdown=f"{description}: nothing recorded yet.",
            description=f"{description}: nothing recorded yet",
        )
    _logger().info(description)
    collisions.report(_logger())
    return {**result, "rows": rows}


def _logger() -> Any:
    """The run logger inside a flow run; a plain logger when the function is called directly."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("peerwatch.flows.themes")
