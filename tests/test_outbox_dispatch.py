"""The outbox (letters written in the transition's transaction) and the dispatcher.

Letters are driven through the engine exactly as users drive them; the dispatcher is run
against the in-memory transport, a folder, and a real SMTP server on loopback (aiosmtpd).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from models import Risk
from models.tables import Contact, OutboxMessage, OutboxStatus
from notifications.build import build_letter
from notifications.dispatch import dispatch
from notifications.render import rendered
from notifications.transports import MemoryTransport
from states import engine
from states.clock import FixedClock
from states.engine.letters import enqueue_letters
from states.machines.risk import TRUST
from states.machines.spec import Letter, get_spec
from tests.factories import person
from tests.support_outbox import (
    MRH,
    NOTIFIED,
    POLICY,
    SC_DUE,
    addresses,
    contacts,
    messages,
    notify,
    sc,  # noqa: F401 (pytest fixtures)
)

# --------------------------------------------------------------------------- the formal notification letter


def test_formal_notification_writes_one_letter_to_the_trust(
    session: Session, services: dict[str, int], sc: Risk
) -> None:
    before = len(messages(session))
    notify(session, sc.id)  # type: ignore[arg-type]
    letters = messages(session, template="formal_notification", item_id=sc.id)
    assert len(letters) == 1
    assert len(messages(session)) == before + 1
    m = letters[0]
    people = contacts(session, services[MRH])
    assert m.category == "letter"
    assert m.status == OutboxStatus.QUEUED
    assert m.last_error is None
    assert sorted(p["email"] for p in m.to) == sorted(
        people["chief-executive"] + people["medical-director"] + people["service-lead"]
    )
    assert {p["role"] for p in m.to} == set(TRUST)
    assert [p["email"] for p in m.cc] == people["accountable-officer"]
    assert m.cc[0]["role"] == "accountable-officer"
    assert f"SC-{sc.id}" in rendered(m).subject and MRH in rendered(m).subject
    # SC: 20 working days from Fri 18 Dec 2026 (Christmas, the 28 Dec substitute, New Year's Day skipped).
    assert SC_DUE in rendered(m).body_text
    assert SC_DUE in rendered(m).body_html
    assert "20 working days" in rendered(m).body_text


def test_ir_letter_names_ten_working_day_due_date(session: Session, raise_risk: Callable[..., Risk]) -> None:
    ir = raise_risk("IR")
    notify(session, ir.id)  # type: ignore[arg-type]
    (m,) = messages(session, template="formal_notification", item_id=ir.id)
    assert "Wed 06 Jan 2027" in rendered(m).body_text  # the DOMAIN.md example
    assert SC_DUE not in rendered(m).body_text


# --------------------------------------------------------------------------- idempotency


def test_enqueue_letters_twice_with_same_key_writes_nothing_more(session: Session, sc: Risk, clock: FixedClock) -> None:
    spec = get_spec("risk")
    letter = Letter("formal_notification", to=TRUST, cc=("accountable-officer",))
    reminder = Letter("response_reminder", to=TRUST, category="reminder")
    kwargs: dict[str, Any] = {"key": "manual1", "clock": clock, "today": date(2026, 12, 11)}
    assert enqueue_letters(session, spec, sc, [letter, reminder], **kwargs) == 1 + 3  # letter + one reminder per person
    session.commit()
    keys = [m.idempotency_key for m in messages(session)]
    assert len(keys) == len(set(keys))
    assert enqueue_letters(session, spec, sc, [letter, reminder], **kwargs) == 0
    session.commit()
    assert [m.idempotency_key for m in messages(session)] == keys
    # A different key is a different step: it is written.
    assert enqueue_letters(session, spec, sc, [letter], **{**kwargs, "key": "manual2"}) == 1


def test_unique_constraint_rejects_raw_duplicate(session: Session, sc: Risk) -> None:
    notify(session, sc.id)  # type: ignore[arg-type]
    (m,) = messages(session, template="formal_notification")
    session.add(
        OutboxMessage(
            idempotency_key=m.idempotency_key,
            kind="risk",
            item_id=m.item_id,
            template=m.template,
            subject="dup",
            body_text="dup",
            body_html="dup",
        )
    )
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()
    assert len(messages(session, idempotency_key=m.idempotency_key)) == 1


# --------------------------------------------------------------------------- a role nobody holds


def _escalate(session: Session, risk_id: int) -> None:
    notify(session, risk_id)
    for day in (date(2027, 1, 4), date(2027, 1, 11)):
        engine.fire(
            session,
            "risk",
            risk_id,
            "response_inadequate",
            principal=person("Dr Asha Patel", "network-manager"),
            clock=FixedClock(day),
        )
        session.commit()
    risk = session.get(Risk, risk_id)
    assert risk is not None and risk.state == "escalated"


def _delete_role(session: Session, *roles: str) -> None:
    session.exec(delete(Contact).where(col(Contact.role).in_(roles)))  # type: ignore[call-overload]
    session.commit()
    assert not session.exec(select(Contact).where(col(Contact.role).in_(roles))).first()


def test_letter_to_roles_nobody_holds_is_undeliverable(session: Session, sc: Risk) -> None:
    _delete_role(session, "cqc", "commissioning-lead")
    _escalate(session, sc.id)  # type: ignore[arg-type]
    (m,) = messages(session, template="escalation", item_id=sc.id, category="letter")
    assert m.status == OutboxStatus.UNDELIVERABLE
    assert m.to == []
    incidents = messages(session, template="escalation", item_id=sc.id, category="incident")
    assert sorted(i.last_error.split("role ")[1].split(" for")[0] for i in incidents) == [  # type: ignore[union-attr]
        "Care Quality Commission",
        "Commissioning Lead",
    ]
    assert m.last_error is not None
    assert "Care Quality Commission" in m.last_error and "Commissioning Lead" in m.last_error
    transport = MemoryTransport()
    dispatch(session, transport, FixedClock(date(2027, 1, 12)), POLICY)
    assert all(msg["X-Peerwatch-Template"] != "escalation" for msg in transport.sent)
    session.refresh(m)
    assert m.status == OutboxStatus.UNDELIVERABLE and m.attempts == 0


def test_missing_cqc_is_recorded_on_the_escalation_letter(session: Session, services: dict[str, int], sc: Risk) -> None:
    _delete_role(session, "cqc")
    _escalate(session, sc.id)  # type: ignore[arg-type]
    escalation = messages(session, template="escalation", item_id=sc.id)
    assert escalation, "the escalation letter must not be silently dropped"
    assert any(m.last_error and "Care Quality Commission" in m.last_error for m in escalation)


def test_missing_cqc_makes_an_undeliverable_incident(session: Session, sc: Risk) -> None:
    _delete_role(session, "cqc")
    _escalate(session, sc.id)  # type: ignore[arg-type]
    escalation = messages(session, template="escalation", item_id=sc.id)
    assert any(
        m.status == OutboxStatus.UNDELIVERABLE and "Care Quality Commission" in (m.last_error or "") for m in escalation
    )


def test_missing_cc_role_is_not_silently_dropped(session: Session, sc: Risk) -> None:
    _delete_role(session, "accountable-officer")
    notify(session, sc.id)  # type: ignore[arg-type]
    (m,) = messages(session, template="formal_notification", item_id=sc.id, category="letter")
    assert m.cc == [] and m.status == OutboxStatus.QUEUED  # still goes to the Trust
    assert m.last_error is not None and "Accountable Officer" in m.last_error
    (incident,) = messages(session, template="formal_notification", item_id=sc.id, category="incident")
    assert incident.status == OutboxStatus.UNDELIVERABLE and "Accountable Officer" in (incident.last_error or "")


# --------------------------------------------------------------------------- dispatch: once each


def test_each_letter_is_sent_once(session: Session, raise_risk: Callable[..., Risk]) -> None:
    risks = [raise_risk("SC"), raise_risk("IR")]
    for r in risks:
        notify(session, r.id)  # type: ignore[arg-type]
    queued = messages(session, status=OutboxStatus.QUEUED)
    assert len(queued) == 2
    transport = MemoryTransport()
    at = FixedClock(NOTIFIED)
    summary = dispatch(session, transport, at, POLICY)
    assert (summary.sent_messages, summary.sent_rows, summary.retried, summary.failed) == (2, 2, 0, 0)
    assert len(transport.sent) == 2
    assert sorted(str(m["X-Peerwatch-Key"]) for m in transport.sent) == sorted(m.idempotency_key for m in queued)
    for m in messages(session):
        assert m.status == OutboxStatus.SENT
        assert m.attempts == 1
        assert m.sent_at == at.now()
    again = dispatch(session, transport, FixedClock(date(2026, 12, 21)), POLICY)
    assert (again.sent_messages, again.sent_rows) == (0, 0)
    assert len(transport.sent) == 2


def test_letter_headers(session: Session, services: dict[str, int], sc: Risk) -> None:
    notify(session, sc.id)  # type: ignore[arg-type]
    (row,) = messages(session)
    transport = MemoryTransport()
    dispatch(session, transport, FixedClock(NOTIFIED), POLICY)
    (msg,) = transport.sent
    people = contacts(session, services[MRH])
    assert addresses(msg, "To") == {e for r in TRUST for e in people[r]}
    assert addresses(msg, "Cc") == set(people["accountable-officer"])
    assert str(msg["Subject"]).strip() == row.subject  # stdlib may fold a long subject onto a continuation line
    assert msg["X-Peerwatch-Key"] == row.idempotency_key
    assert msg["X-Peerwatch-Template"] == "formal_notification"
    session.refresh(row)
    assert row.message_id == msg["Message-ID"]
    # Stable: rebuilding the same row later, from another transport, gives the same Message-ID.
    rebuilt = build_letter(row, "other <other@example.invalid>", FixedClock(date(2027, 6, 1)))
    assert rebuilt["Message-ID"] == msg["Message-ID"]
    assert str(msg["Message-ID"]).startswith("<") and "@" in str(msg["Message-ID"])
