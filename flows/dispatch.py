"""Drain the outbox as a Prefect flow; failures stay queued and are retried with back-off.

Every run refreshes the ``outbox`` artifact (messages by status) and ``outbox-incidents``
(failed, undeliverable, interrupted or in-doubt sends), flows/artifacts.py. In a training
database nothing goes over SMTP, whatever ``PEERWATCH_MAIL`` says: letters are written to
``PEERWATCH_OUTBOX_DIR`` and marked sent with a note (notifications/transports.py).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from sqlmodel import Session

from flows import collisions
from flows.artifacts import publish_outbox
from flows.naming import as_of as run_name
from flows.run_clock import sweep_clock
from models import init_db
from notifications.dispatch import dispatch as drain
from notifications.dispatch import incident_rows, incidents
from notifications.transports import transport_from_env
from states.policy import Policy


@flow(
    name="dispatch",
    flow_run_name=run_name("dispatch"),
    description="Send queued letters, reminders and chases (PEERWATCH_MAIL=folder|smtp).",
)
def dispatch(as_of: str | None = None) -> dict[str, Any]:
    logger = get_run_logger()
    engine = init_db()
    clock = sweep_clock(as_of)
    with Session(engine, expire_on_commit=False) as session:
        summary = drain(session, transport_from_env(), clock, Policy.from_env())
        open_incidents = incident_rows(incidents(session, clock.now()))
    if summary.note:
        logger.warning("%s", summary.note)
    for err in summary.errors:
        logger.warning("send failed: %s", err)
    if summary.in_doubt:
        logger.error(
            "%d message(s) in doubt after an interrupted send, each resent once (same Message-ID) after "
            "PEERWATCH_IN_DOUBT_RESEND_SECONDS: see `peerwatch outbox list --incidents`",
            summary.in_doubt,
        )
    if summary.unsendable:
        logger.error(
            "%d message(s) could not be built or sent: failed incidents, the rest went on (see the "
            "outbox-incidents artifact)",
            summary.unsendable,
        )
    if summary.not_tried:
        logger.error(
            "the mail service could not be reached: %d message(s) left queued for the next run", summary.not_tried
        )
    with Session(engine) as session:
        publish_outbox(session, clock)
    collisions.report(logger)
    return {
        "emails_sent": summary.sent_messages,
        "messages_sent": summary.sent_rows,
        "retried": summary.retried,
        "failed": summary.failed,
        "still_failed": summary.still_failed,
        "redelivered": summary.redelivered,
        "recovered_sent": summary.recovered_sent,
        "requeued": summary.requeued,
        "in_doubt": summary.in_doubt,
        "resent": summary.resent,
        "unsendable": summary.unsendable,
        "not_tried": summary.not_tried,
        "incidents": len(open_incidents),
        "note": summary.note,
    }
