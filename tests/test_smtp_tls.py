"""SMTP verifies the relay (issue 12, item 4): certificates and host names checked, TLS required
for any relay not on this machine, connect and command timeouts, and a run that stops trying
after N consecutive failures to reach the relay.

Against real servers on 127.0.0.1: aiosmtpd with STARTTLS and a self-signed certificate made
now by the ``cryptography`` package, and a relay that accepts TCP and never answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlmodel import Session, col, select

from models import Risk
from models.tables import OutboxMessage, OutboxStatus
from notifications.dispatch import DispatchPolicy, dispatch
from notifications.errors import InvalidSetting
from notifications.transports import ConnectionFailed, SmtpTransport, TransportError, is_loopback, transport_from_env
from states import engine
from states.clock import FixedClock
from states.policy import Policy
from tests.factories import person
from tests.mailservers import self_signed, server_context, silent_relay, smtp_server

NOTIFIED = date(2026, 12, 18)
POLICY = Policy(max_send_attempts=3, retry_backoff_seconds=60)


def _message(sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = (
        sender,
        "lead@trust.nhs.example",
        "TLS test",
        "<tls-1@peerwatch.invalid>",
    )
    msg.set_content("Sent over a verified TLS connection.")
    return msg


def test_a_self_signed_relay_is_refused_without_its_ca_and_delivered_to_with_it(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "ca", "localhost")
    with smtp_server(server_context(cert, key), hostname="localhost") as (port, server):
        bare = SmtpTransport("localhost", port, tls="starttls", connect_timeout=5, timeout=5)
        with pytest.raises(ConnectionFailed, match=r"certificate was refused.*PEERWATCH_SMTP_CA_FILE"):
            bare.send(_message(bare.sender))
        assert server.messages == []
        trusted = SmtpTransport("localhost", port, tls="starttls", ca_file=str(cert), connect_timeout=5, timeout=5)
        trusted.send(_message(trusted.sender))
    (got,) = server.messages
    assert str(got["Message-ID"]) == "<tls-1@peerwatch.invalid>"


def test_a_certificate_for_another_host_is_refused_even_with_its_ca(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "other", "relay.other-network.example")
    with smtp_server(server_context(cert, key), hostname="localhost") as (port, server):
        transport = SmtpTransport("localhost", port, tls="starttls", ca_file=str(cert), connect_timeout=5, timeout=5)
        with pytest.raises(
            ConnectionFailed, match=r"certificate was refused.*(Hostname mismatch|doesn't match|not valid for)"
        ):
            transport.send(_message(transport.sender))
    assert server.messages == []


def test_tls_is_required_by_default_for_any_relay_not_on_this_machine() -> None:
    assert [
        is_loopback(h) for h in ("127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "smtp.nhs.net", "10.0.0.5")
    ] == [True, True, True, True, True, False, False]
    assert SmtpTransport("smtp.nhs.net", 587).tls == "starttls"
    assert SmtpTransport("10.0.0.5").tls == "starttls"
    assert SmtpTransport("127.0.0.1").tls == "none"
    assert SmtpTransport("127.0.0.1", starttls=True).tls == "starttls"
    with pytest.raises(InvalidSetting, match="use one of starttls, tls, none"):
        SmtpTransport("smtp.nhs.net", tls="maybe")


def test_a_relay_that_does_not_offer_starttls_is_refused_when_tls_is_required() -> None:
    with smtp_server() as (port, server):
        transport = SmtpTransport("127.0.0.1", port, tls="starttls", connect_timeout=5, timeout=5)
        with pytest.raises(ConnectionFailed, match="does not offer STARTTLS"):
            transport.send(_message(transport.sender))
    assert server.messages == []


def test_smtp_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PEERWATCH_MAIL", "smtp")
    monkeypatch.setenv("PEERWATCH_SMTP_HOST", "smtp.nhs.net")
    monkeypatch.setenv("PEERWATCH_SMTP_CA_FILE", str(tmp_path / "private-ca.pem"))
    monkeypatch.setenv("PEERWATCH_SMTP_CONNECT_TIMEOUT", "2.5")
    monkeypatch.setenv("PEERWATCH_SMTP_TIMEOUT", "20")
    t = transport_from_env()
    assert isinstance(t, SmtpTransport)
    assert (t.tls, t.ca_file, t.connect_timeout, t.timeout) == ("starttls", str(tmp_path / "private-ca.pem"), 2.5, 20.0)
    with pytest.raises(
        ConnectionFailed, match="cannot read the CA file"
    ):  # a CA file that is not there: refused, not ignored
        t.send(_message(t.sender))
    monkeypatch.setenv("PEERWATCH_SMTP_TLS", "tls")
    assert transport_from_env().tls == "tls"  # type: ignore[attr-defined]
    monkeypatch.setenv("PEERWATCH_SMTP_CONNECT_TIMEOUT", "soon")
    with pytest.raises(InvalidSetting, match="PEERWATCH_SMTP_CONNECT_TIMEOUT='soon' is not a number"):
        transport_from_env()
    monkeypatch.setenv("PEERWATCH_MAX_CONNECTION_FAILURES", "5")
    assert DispatchPolicy.from_env().max_connection_failures == 5
    monkeypatch.setenv("PEERWATCH_MAX_CONNECTION_FAILURES", "0")
    with pytest.raises(InvalidSetting, match="out of range"):
        DispatchPolicy.from_env()


def test_a_relay_that_never_answers_is_abandoned_quickly_and_the_run_stops_after_n_failures(
    session: Session,
    raise_risk: Callable[..., Risk],
) -> None:
    """The issue: a relay that accepts TCP and never answers took 120 s for 4 letters. Now each
    try gives up after the connect timeout, and after 3 in a row the run stops: the 4th letter
    is left queued, untouched, for the next run."""
    risk = raise_risk("SC")
    engine.fire(
        session,
        "risk",
        risk.id,
        "send_formal_notification",
        principal=person("Dr Asha Patel", "network-manager"),
        clock=FixedClock(NOTIFIED),
    )
    session.commit()
    (row,) = session.exec(select(OutboxMessage).where(OutboxMessage.template == "formal_notification"))
    base = row.model_dump()
    base.pop("id")
    session.execute(
        insert(OutboxMessage.__table__),
        [
            {**base, "idempotency_key": f"{row.idempotency_key}:{i}"}  # type: ignore[attr-defined]
            for i in range(3)
        ],
    )
    session.commit()
    with silent_relay() as port:
        transport = SmtpTransport("127.0.0.1", port, connect_timeout=0.5, timeout=5)
        started = time.monotonic()
        summary = dispatch(
            session, transport, FixedClock(NOTIFIED), POLICY, dpolicy=DispatchPolicy(max_connection_failures=3)
        )
        took = time.monotonic() - started
    print(f"\nhung relay: 4 letters, stopped after {took:.2f} s")
    assert took < 5, took  # 3 tries x 0.5 s, not 4 x 30 s
    assert (summary.sent_messages, summary.retried, summary.not_tried) == (0, 3, 1)
    assert any("3 consecutive failures to reach the mail service" in e for e in summary.errors)
    session.expire_all()
    rows = list(
        session.exec(
            select(OutboxMessage).where(OutboxMessage.template == "formal_notification").order_by(col(OutboxMessage.id))
        )
    )
    assert [(r.status, r.attempts) for r in rows] == [(OutboxStatus.QUEUED, 1)] * 3 + [(OutboxStatus.QUEUED, 0)]
    assert all("cannot reach the relay" in (r.last_error or "") for r in rows[:3])


def test_a_message_refused_by_a_reachable_relay_does_not_stop_the_run(session: Session) -> None:
    """Only failures to reach the relay count towards stopping: a recipient refused is that letter's problem."""
    with smtp_server() as (port, _server):
        transport = SmtpTransport("127.0.0.1", port, timeout=5)
        msg = _message(transport.sender)
        del msg["To"]
        msg["To"] = "no-at-sign"
        try:
            transport.send(msg)
        except ConnectionFailed:  # pragma: no cover - the assertion below says why
            pytest.fail("a refused recipient is not a connection failure")
        except TransportError:
            pass
