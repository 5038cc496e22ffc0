"""Drain the outbox as a Prefect flow; failures stay queued and are retried with back-off."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from sqlmodel import Session, col, select

from models import OutboxMessage, OutboxStatus, init_db
from notifications.dispatch import dispatch as drain
from notifications.transports import transport_from_env
from states.clock import clock_from


@flow(name="dispatch", description="Send queued letters, reminders and chases (PEERWATCH_MAIL=folder|smtp).")
def dispatch(as_of: str | None = None) -> dict[str, Any]:
    logger = get_run_logger()
    engine = init_db()
    with Session(engine, expire_on_commit=False) as session:
        summary = drain(session, transport_from_env(), clock_from(as_of))
        incidents = list(session.exec(select(OutboxMessage).where(
            col(OutboxMessage.status).in_([OutboxStatus.FAILED, OutboxStatus.UNDELIVERABLE]))))
    for err in summary.errors:
        logger.warning("send failed: %s", err)
    if incidents:
        create_table_artifact(key="outbox-incidents", description="Letters that could not be delivered",
                              table=[{"id": m.id, "status": m.status, "template": m.template, "item": f"{m.kind} {m.item_id}",
                                      "attempts": m.attempts, "error": m.last_error} for m in incidents])
    return {"emails_sent": summary.sent_messages, "messages_sent": summary.sent_rows,
            "retried": summary.retried, "failed": summary.failed, "incidents": len(incidents)}
