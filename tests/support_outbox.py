"""Helpers shared by the test_outbox_dispatch test files (split from one module)."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.message import Message
from email.utils import getaddresses
from typing import Any

import pytest
from sqlmodel import Session, col, select

from models import Risk
from models.tables import Contact, OutboxMessage, Service
from states import engine
from states.clock import FixedClock
from states.policy import Policy
from tests.factories import person

UTC = UTC
MRH = "Midland Royal Major Trauma Centre"
NOTIFIED = date(2026, 12, 18)  # formal notification day; SC response due Wed 20 Jan 2027
SC_DUE = "Wed 20 Jan 2027"
REMINDER_DAY = date(2027, 1, 18)  # 2 working days before 20 Jan 2027
POLICY = Policy(max_send_attempts=3, retry_backoff_seconds=60)


# --------------------------------------------------------------------------- helpers


def notify(session: Session, risk_id: int, day: date = NOTIFIED) -> None:
    engine.fire(
        session,
        "risk",
        risk_id,
        "send_formal_notification",
        principal=person("Dr Asha Patel", "network-manager"),
        clock=FixedClock(day),
    )
    session.commit()


def messages(session: Session, **where: Any) -> list[OutboxMessage]:
    q = select(OutboxMessage).order_by(col(OutboxMessage.id))
    for name, value in where.items():
        q = q.where(getattr(OutboxMessage, name) == value)
    return list(session.exec(q))


def contacts(session: Session, service_id: int) -> dict[str, list[str]]:
    """Emails by role for a service, looked up from the Contact table directly."""
    svc = session.get(Service, service_id)
    assert svc is not None

    def emails(*conds: Any) -> list[str]:
        return sorted(c.email for c in session.exec(select(Contact).where(*conds)))

    out = {
        "chief-executive": emails(
            Contact.role == "chief-executive",
            Contact.organisation_id == svc.organisation_id,
            col(Contact.service_id).is_(None),
        ),
        "medical-director": emails(
            Contact.role == "medical-director",
            Contact.organisation_id == svc.organisation_id,
            col(Contact.service_id).is_(None),
        ),
        "service-lead": emails(Contact.role == "service-lead", Contact.service_id == service_id),
        "accountable-officer": emails(
            Contact.role == "accountable-officer",
            Contact.network_id == svc.network_id,
            col(Contact.organisation_id).is_(None),
            col(Contact.service_id).is_(None),
        ),
    }
    for role, found in out.items():
        assert len(found) == 1, f"demo data should have exactly one {role}: {found}"
    return out


def parse(raw: bytes) -> Message:
    """Parse a message as a mail client would (folded headers unfolded)."""
    return email.message_from_bytes(raw, policy=email.policy.default)


def addresses(msg: Message, header: str) -> set[str]:
    return {addr.lower() for _, addr in getaddresses(msg.get_all(header, []))}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sc(raise_risk: Callable[..., Risk]) -> Risk:
    """An SC raised at the 11 Dec 2026 visit, formally notified on Fri 18 Dec 2026."""
    return raise_risk("SC")


# --------------------------------------------------------------------------- retries

T0 = datetime(2026, 12, 18, 12, tzinfo=UTC)  # the letter is written at noon London = noon UTC in December


def at(seconds: float) -> FixedClock:
    return FixedClock(T0 + timedelta(seconds=seconds))
