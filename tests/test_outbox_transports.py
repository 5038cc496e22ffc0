"""Sending: retries and backoff, the folder transport, and a real SMTP server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from models import Risk
from models.tables import Contact, OutboxStatus, Service
from notifications.dispatch import dispatch
from notifications.transports import FolderTransport, MemoryTransport, SmtpTransport, TransportError
from states.clock import FixedClock
from states.machines.risk import TRUST
from tests.support_outbox import (
    MRH,
    NOTIFIED,
    POLICY,
    T0,
    addresses,
    at,
    contacts,
    free_port,
    messages,
    notify,
    parse,
    sc,  # noqa: F401 (pytest fixtures)
)


def test_retry_backoff_then_failed(session: Session, sc: Risk) -> None:
    notify(session, sc.id)  # type: ignore[arg-type]
    (row,) = messages(session)
    assert row.next_attempt_at == T0
    transport = MemoryTransport()
    transport.down = True

    s = dispatch(session, transport, at(0), POLICY)
    assert (s.retried, s.failed, s.sent_messages) == (1, 0, 0)
    assert s.errors and "unavailable" in s.errors[0]
    session.refresh(row)
    assert (row.status, row.attempts) == (OutboxStatus.QUEUED, 1)
    assert row.next_attempt_at == T0 + timedelta(seconds=60)
    assert row.last_error and "unavailable" in row.last_error

    s = dispatch(session, transport, at(59), POLICY)  # not due yet: untouched
    assert (s.retried, s.failed, s.sent_messages) == (0, 0, 0)
    session.refresh(row)
    assert row.attempts == 1

    s = dispatch(session, transport, at(60), POLICY)
    assert s.retried == 1
    session.refresh(row)
    assert (row.status, row.attempts) == (OutboxStatus.QUEUED, 2)
    assert row.next_attempt_at == T0 + timedelta(seconds=60 + 120)  # doubled

    assert dispatch(session, transport, at(179), POLICY).retried == 0
    session.refresh(row)
    assert row.attempts == 2

    s = dispatch(session, transport, at(180), POLICY)
    assert (s.retried, s.failed) == (0, 1)
    session.refresh(row)
    assert (row.status, row.attempts) == (OutboxStatus.FAILED, 3)
    assert transport.sent == []

    # The transport recovers: a failed message (an incident) is retried on the long back-off and sent once.
    transport.down = False
    s = dispatch(session, transport, at(86400), POLICY)
    assert s.sent_messages == 1 and len(transport.sent) == 1
    session.refresh(row)
    assert row.status == OutboxStatus.SENT
    assert dispatch(session, transport, at(2 * 86400), POLICY).sent_messages == 0


def test_queued_message_delivered_when_transport_recovers(session: Session, raise_risk: Callable[..., Risk]) -> None:
    first = raise_risk("SC")
    notify(session, first.id)  # type: ignore[arg-type]
    (failed,) = messages(session)
    transport = MemoryTransport()
    transport.down = True
    for seconds in (0, 60, 180):
        dispatch(session, transport, at(seconds), POLICY)
    session.refresh(failed)
    assert failed.status == OutboxStatus.FAILED

    second = raise_risk("SC")
    notify(session, second.id, date(2026, 12, 21))  # type: ignore[arg-type]
    (pending,) = messages(session, item_id=second.id, template="formal_notification")
    dispatch(session, transport, FixedClock(date(2026, 12, 21)), POLICY)  # still down: stays queued
    session.refresh(pending)
    assert (pending.status, pending.attempts) == (OutboxStatus.QUEUED, 1)

    transport.down = False
    s = dispatch(session, transport, FixedClock(date(2026, 12, 22)), POLICY)
    assert (s.sent_messages, s.sent_rows) == (2, 2)  # the queued one and the failed one, once each
    assert sorted(m["X-Peerwatch-Key"] for m in transport.sent) == sorted(
        [pending.idempotency_key, failed.idempotency_key]
    )
    session.refresh(pending)
    session.refresh(failed)
    assert (pending.status, pending.attempts) == (OutboxStatus.SENT, 2)
    assert failed.status == OutboxStatus.SENT


# --------------------------------------------------------------------------- folder transport


def test_folder_transport_writes_one_eml_per_message(
    tmp_path: Path,
    session: Session,
    services: dict[str, int],
    raise_risk: Callable[..., Risk],
) -> None:
    risks = [raise_risk("SC"), raise_risk("IR")]
    for r in risks:
        notify(session, r.id)  # type: ignore[arg-type]
    folder = tmp_path / "mail"
    transport = FolderTransport(folder)
    assert dispatch(session, transport, FixedClock(NOTIFIED), POLICY).sent_messages == 2
    files = sorted(folder.glob("*.eml"))
    assert len(files) == 2
    assert list(folder.glob("*.tmp")) == []
    people = contacts(session, services[MRH])
    rows = {m.idempotency_key: m for m in messages(session)}
    for f in files:
        msg = parse(f.read_bytes())
        assert addresses(msg, "To") == {e for r in TRUST for e in people[r]}
        assert addresses(msg, "Cc") == set(people["accountable-officer"])
        row = rows[msg["X-Peerwatch-Key"]]
        assert str(msg["Subject"]).strip() == row.subject  # stdlib may fold a long subject onto a continuation line
        assert msg["Message-ID"] == row.message_id
    assert dispatch(session, transport, FixedClock(date(2026, 12, 21)), POLICY).sent_messages == 0
    assert len(list(folder.glob("*.eml"))) == 2


def test_folder_transport_write_error_is_transport_error(tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    folder.mkdir()
    msg = EmailMessage()
    msg["Message-ID"] = "<abc@peerwatch.invalid>"
    msg.set_content("hello")
    (folder / "abc_peerwatch.invalid.tmp").mkdir()  # the temporary file cannot be written
    with pytest.raises(TransportError, match="cannot write"):
        FolderTransport(folder).send(msg)
    assert list(folder.glob("*.eml")) == []


def test_folder_transport_uncreatable_folder_is_transport_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the outbox folder should be")
    msg = EmailMessage()
    msg["Message-ID"] = "<abc@peerwatch.invalid>"
    msg.set_content("hello")
    with pytest.raises(TransportError):
        FolderTransport(blocker).send(msg)


def test_dispatch_to_uncreatable_folder_keeps_message_queued(tmp_path: Path, session: Session, sc: Risk) -> None:
    notify(session, sc.id)  # type: ignore[arg-type]
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the outbox folder should be")
    summary = dispatch(session, FolderTransport(blocker), FixedClock(NOTIFIED), POLICY)
    assert summary.retried == 1
    (row,) = messages(session)
    session.refresh(row)
    assert (row.status, row.attempts) == (OutboxStatus.QUEUED, 1)


# --------------------------------------------------------------------------- a real SMTP server


class _Collector:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def test_smtp_transport_delivers_to_a_real_server(session: Session, services: dict[str, int], sc: Risk) -> None:
    from aiosmtpd.controller import Controller

    notify(session, sc.id)  # type: ignore[arg-type]
    (row,) = messages(session)
    handler = _Collector()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        summary = dispatch(session, SmtpTransport("127.0.0.1", port, timeout=10), FixedClock(NOTIFIED), POLICY)
    finally:
        controller.stop()
    assert (summary.sent_messages, summary.failed, summary.retried) == (1, 0, 0)
    (env,) = handler.envelopes
    people = contacts(session, services[MRH])
    expected = {e for r in (*TRUST, "accountable-officer") for e in people[r]}
    assert {a.lower() for a in env.rcpt_tos} == expected  # To and Cc both reach the envelope
    assert env.mail_from == "peerwatch@network.nhs.invalid"
    received = parse(env.content if isinstance(env.content, bytes) else env.content.encode())
    assert str(received["Subject"]).strip() == row.subject
    assert received["X-Peerwatch-Key"] == row.idempotency_key
    session.refresh(row)
    assert row.status == OutboxStatus.SENT


def test_smtp_to_closed_port_is_transport_error_and_stays_queued(session: Session, sc: Risk) -> None:
    port = free_port()  # bound then released: nothing listens there
    transport = SmtpTransport("127.0.0.1", port, timeout=5)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = transport.sender, "x@example.invalid", "t"
    msg.set_content("t")
    with pytest.raises(TransportError, match=f"127.0.0.1:{port}"):
        transport.send(msg)

    notify(session, sc.id)  # type: ignore[arg-type]
    summary = dispatch(session, transport, FixedClock(NOTIFIED), POLICY)
    assert (summary.sent_messages, summary.retried, summary.failed) == (0, 1, 0)
    (row,) = messages(session)
    session.refresh(row)
    assert (row.status, row.attempts) == (OutboxStatus.QUEUED, 1)
    assert row.last_error and f"127.0.0.1:{port}" in row.last_error
    assert row.sent_at is None


def test_recipients_come_only_from_the_items_own_trust_and_network(session: Session, services: dict[str, int]) -> None:
    """An item with no service (a Trust's document request) or no Trust (a network's phase):
    the role is looked for at the levels the item has, never matched across Trusts or
    networks (comparing with a missing id must not become 'any')."""
    from states.engine.letters import resolve

    svc = session.get(Service, next(iter(services.values())))
    assert svc is not None
    trust_ceo = resolve(
        session,
        "chief-executive",
        {"service_id": None, "organisation_id": svc.organisation_id, "network_id": svc.network_id},
    )
    all_ceos = session.exec(select(Contact).where(Contact.role == "chief-executive")).all()
    assert len({c.organisation_id for c in all_ceos}) > 1  # the seed has several Trusts
    assert trust_ceo and {c.organisation_id for c in trust_ceo} == {svc.organisation_id}
    managers = resolve(
        session, "network-manager", {"service_id": None, "organisation_id": None, "network_id": svc.network_id}
    )
    assert managers and {c.network_id for c in managers} == {svc.network_id}
    nowhere = resolve(session, "chief-executive", {"service_id": None, "organisation_id": None, "network_id": None})
    assert nowhere == []  # no national Chief Executive: nobody, not everybody
