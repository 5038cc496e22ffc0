"""A training database never sends its letters over SMTP (issue 14), whatever PEERWATCH_MAIL says.

Against a real aiosmtpd on 127.0.0.1 that the dispatcher is pointed at: in a training database
it receives nothing; the letters are written where the folder transport writes
(PEERWATCH_OUTBOX_DIR), marked as training letters, and their rows marked sent with a note. The
same letter in a database that is not a training one reaches the server (the setting works).
"""

from __future__ import annotations

import email
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session, select

from models import OutboxMessage, Risk
from models.tables import OutboxStatus
from notifications.dispatch import dispatch
from notifications.transports import TRAINING_HEADER, SmtpTransport, transport_from_env
from states.clock import FixedClock
from tests.mailservers import Collector, smtp_server

DAY = FixedClock(date(2026, 12, 11))


@pytest.fixture
def relay(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    """aiosmtpd on 127.0.0.1, and PEERWATCH_MAIL=smtp pointing at it."""
    with smtp_server() as (port, server):
        monkeypatch.setenv("PEERWATCH_MAIL", "smtp")
        monkeypatch.setenv("PEERWATCH_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("PEERWATCH_SMTP_PORT", str(port))
        yield server


def _rows(session: Session, risk_id: int) -> list[OutboxMessage]:
    session.expire_all()
    return list(session.exec(select(OutboxMessage).where(OutboxMessage.item_id == risk_id)))


def test_a_training_databases_letters_go_to_the_folder_never_to_the_smtp_server(
    training: None, session: Session, raise_risk: Callable[..., Risk], relay: Collector, tmp_path: Path
) -> None:
    risk = raise_risk("IR", impact=5, likelihood=5)  # the ASCT notice, queued at once
    transport = transport_from_env()
    assert isinstance(transport, SmtpTransport)  # what the settings ask for...
    summary = dispatch(session, transport, DAY)
    assert relay.messages == []  # ...and the server received nothing
    assert summary.sent_messages == 1 and summary.note == (
        f"training database: written to {tmp_path / 'outbox'}, never sent over SMTP"
    )
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes())
    assert msg[TRAINING_HEADER] == "a letter of a training database: never sent over SMTP"
    (row,) = _rows(session, risk.id)
    assert (row.status, row.last_error) == (OutboxStatus.SENT, summary.note)
    assert row.message_id == msg["Message-ID"]


def test_the_dispatch_flow_on_a_training_database_sends_nothing_over_smtp(
    training: None,
    prefect_harness: None,
    session: Session,
    raise_risk: Callable[..., Risk],
    relay: Collector,
    tmp_path: Path,
) -> None:
    from flows.dispatch import dispatch as dispatch_flow

    risk = raise_risk("IR", impact=5, likelihood=5)
    out = dispatch_flow(as_of="2026-12-11")  # a training database runs on its story's dates
    assert relay.messages == [] and out["emails_sent"] == 1 and "never sent over SMTP" in out["note"]
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    assert [r.status for r in _rows(session, risk.id)] == [OutboxStatus.SENT]


def test_the_same_letter_outside_a_training_database_reaches_the_smtp_server(
    session: Session, raise_risk: Callable[..., Risk], relay: Collector, tmp_path: Path
) -> None:
    risk = raise_risk("IR", impact=5, likelihood=5)
    summary = dispatch(session, transport_from_env(), DAY)
    assert summary.sent_messages == 1 and summary.note is None
    (got,) = relay.messages
    assert got[TRAINING_HEADER] is None and not (tmp_path / "outbox").exists()
    (row,) = _rows(session, risk.id)
    assert (row.status, row.last_error) == (OutboxStatus.SENT, None)
