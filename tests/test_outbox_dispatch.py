"""The outbox (letters written in the transition's transaction) and the dispatcher.

Letters are driven through the engine exactly as users drive them; the dispatcher is run
against the in-memory transport, a folder, and a real SMTP server on loopback (aiosmtpd).
"""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage, Message
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from models import Risk
from models.tables import Attachment, Contact, OutboxMessage, OutboxStatus, Service
from notifications.build import build_digest, build_letter
from notifications.dispatch import dispatch, incidents
from notifications.render import rendered, thaw
from notifications.transports import FolderTransport, MemoryTransport, SmtpTransport, TransportError
from states import engine
from states.clock import FixedClock
from states.engine.letters import enqueue_letters, freeze
from states.engine.sweep import run_sweep
from states.errors import InvalidInput
from states.machines.risk import TRUST
from states.machines.spec import Letter, get_spec
from states.policy import Policy

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
        actor="Dr Asha Patel",
        role="network-manager",
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
            actor="Dr Asha Patel",
            role="network-manager",
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


# --------------------------------------------------------------------------- rendered at dispatch


def test_freeze_gives_back_dates_and_refuses_what_a_letter_cannot_hold() -> None:
    context = {
        "today": date(2026, 12, 18),
        "at": datetime(2026, 12, 18, 9, 30, tzinfo=UTC),
        "deadlines": {"response": date(2027, 1, 20)},
        "to": [{"name": "Dr Ó Néill", "email": "o@x.nhs.uk"}],
        "item": {"score": 12, "title": "Rota gaps", "visit_date": None},
    }
    back = thaw(freeze(context))
    assert back == context
    assert type(back["today"]) is date and type(back["at"]) is datetime and back["at"].tzinfo is not None
    with pytest.raises(InvalidInput, match="context cannot hold set"):
        freeze({"roles": {"chief-executive"}})
    # A letter's own data with a key like a tag's stays data.
    assert thaw(freeze({"x": {"$date": "not a date"}})) == {"x": {"$date": "not a date"}}


def test_transition_stores_the_letters_context_and_dispatch_keeps_what_it_sent(session: Session, sc: Risk) -> None:
    notify(session, sc.id)  # type: ignore[arg-type]
    (row,) = messages(session)
    assert row.body_text is None and row.subject is None and row.context is not None
    frozen = thaw(row.context)
    assert frozen["deadlines"] == {"response": date(2027, 1, 20)} and frozen["item"]["ref"] == f"SC-{sc.id}"
    preview = rendered(row)
    transport = MemoryTransport()
    dispatch(session, transport, FixedClock(NOTIFIED), POLICY)
    (msg,) = transport.sent
    session.refresh(row)
    assert (row.subject, row.body_text, row.body_html) == tuple(preview)  # the preview was the letter
    assert rendered(row) == preview
    sent = parse(msg.as_bytes())
    assert sent["Subject"] == row.subject
    assert sent.get_body(("plain",)).get_content().strip() == row.body_text.strip()  # type: ignore[union-attr]
    assert sent.get_body(("html",)).get_content().strip() == row.body_html.strip()  # type: ignore[union-attr]


def test_letter_that_cannot_be_rendered_is_an_incident_and_the_others_still_go(
    session: Session, raise_risk: Callable[..., Risk]
) -> None:
    good, bad = raise_risk("SC"), raise_risk("SC")
    for r in (good, bad):
        notify(session, r.id)  # type: ignore[arg-type]
    (broken,) = messages(session, item_id=bad.id)
    context = thaw(broken.context)  # type: ignore[arg-type]
    del context["deadlines"]  # as a template that quotes a value its transition never gave
    broken.context = freeze(context)
    session.add(broken)
    session.commit()
    transport = MemoryTransport()
    summary = dispatch(session, transport, FixedClock(NOTIFIED), POLICY)
    assert [m["X-Peerwatch-Key"] for m in transport.sent] == [messages(session, item_id=good.id)[0].idempotency_key]
    assert summary.sent_messages == 1 and summary.failed == 1
    session.refresh(broken)
    assert broken.status == OutboxStatus.FAILED and broken.attempts == 1 and broken.body_text is None
    assert "template 'formal_notification'" in (broken.last_error or "") and "deadlines" in (broken.last_error or "")
    assert broken.id in {m.id for m in incidents(session, FixedClock(NOTIFIED).now())}
    # Mended (here: the context restored), the next try after the back-off sends it.
    broken.context = freeze({**context, "deadlines": {"response": date(2027, 1, 20)}})
    session.add(broken)
    session.commit()
    later = dispatch(session, transport, FixedClock(date(2026, 12, 21)), POLICY)
    assert later.redelivered == 1 and len(transport.sent) == 2
    session.refresh(broken)
    assert broken.status == OutboxStatus.SENT and SC_DUE in (broken.body_text or "")


def test_an_attachment_that_cannot_be_rendered_is_an_incident_and_the_others_still_go(
    session: Session, raise_risk: Callable[..., Risk]
) -> None:
    """Attachments render at dispatch, as letters do: one whose renderer fails keeps its letter
    back as an incident naming the file; the other letters go, and the mended one goes next time."""
    good, bad = raise_risk("SC"), raise_risk("SC")
    for r in (good, bad):
        notify(session, r.id)  # type: ignore[arg-type]
    (letter,) = messages(session, item_id=bad.id)
    session.add(
        Attachment(
            idempotency_key=letter.idempotency_key,
            filename="report.pdf",
            content_type="application/pdf",
            renderer="report_pdf",
            document=freeze({"document": {}, "draft": False}),  # data the renderer cannot use
        )
    )
    session.commit()
    transport = MemoryTransport()
    summary = dispatch(session, transport, FixedClock(NOTIFIED), POLICY)
    assert [m["X-Peerwatch-Key"] for m in transport.sent] == [messages(session, item_id=good.id)[0].idempotency_key]
    assert summary.sent_messages == 1 and summary.failed == 1
    session.refresh(letter)
    assert letter.status == OutboxStatus.FAILED and "attachment 'report.pdf' could not be rendered" in (
        letter.last_error or ""
    )
    (file,) = session.exec(select(Attachment).where(Attachment.idempotency_key == letter.idempotency_key)).all()
    file.renderer, file.data = None, b"%PDF-1.4 mended"
    session.add(file)
    session.commit()
    later = dispatch(session, transport, FixedClock(date(2026, 12, 21)), POLICY)
    assert later.redelivered == 1
    (part,) = list(transport.sent[-1].iter_attachments())
    assert part.get_content() == b"%PDF-1.4 mended"


def test_a_row_written_before_rendering_moved_to_dispatch_is_sent_as_stored(session: Session, sc: Risk) -> None:
    session.add(
        OutboxMessage(
            idempotency_key="risk:legacy:letter",
            kind="risk",
            item_id=sc.id,
            template="formal_notification",  # type: ignore[arg-type]
            subject="Stored subject",
            body_text="Stored text\n",
            body_html="<p>Stored</p>",
            to=[{"name": "Ann", "email": "ann@trust.nhs.uk", "role": "", "role_name": ""}],
        )
    )
    session.commit()
    transport = MemoryTransport()
    dispatch(session, transport, FixedClock(NOTIFIED), POLICY)
    (msg,) = transport.sent
    assert msg["Subject"] == "Stored subject" and msg.get_body(("plain",)).get_content() == "Stored text\n"  # type: ignore[union-attr]


def test_message_ids_differ_between_letters(session: Session, raise_risk: Callable[..., Risk]) -> None:
    for r in (raise_risk("SC"), raise_risk("SC")):
        notify(session, r.id)  # type: ignore[arg-type]
    transport = MemoryTransport()
    dispatch(session, transport, FixedClock(NOTIFIED), POLICY)
    assert len({m["Message-ID"] for m in transport.sent}) == 2


def test_message_claimed_as_sending_is_recovered_only_when_the_transport_says_it_was_not_sent(
    session: Session, sc: Risk
) -> None:
    notify(session, sc.id)  # type: ignore[arg-type]
    (row,) = messages(session)
    row.status = OutboxStatus.SENDING  # a crash between claim and send
    session.add(row)
    session.commit()
    delivered = MemoryTransport()
    delivered.sent.append(build_letter(row, delivered.sender, FixedClock(NOTIFIED)))  # it did go out before the crash
    assert dispatch(session, delivered, FixedClock(date(2026, 12, 21)), POLICY).sent_messages == 0
    session.refresh(row)
    assert row.status == OutboxStatus.SENT and len(delivered.sent) == 1  # marked sent, not sent again


# --------------------------------------------------------------------------- digests


def _two_reminders(db: Engine, session: Session, raise_risk: Callable[..., Risk]) -> tuple[list[Risk], MemoryTransport]:
    risks = [raise_risk("SC"), raise_risk("SC")]
    for r in risks:
        notify(session, r.id)  # type: ignore[arg-type]
    transport = MemoryTransport()
    dispatch(session, transport, FixedClock(NOTIFIED), POLICY)  # the two formal letters
    assert len(transport.sent) == 2
    transport.sent.clear()
    summary = run_sweep(db, FixedClock(REMINDER_DAY), POLICY)
    assert summary.count("reminded") == 2
    session.commit()  # end the read snapshot: see what the sweep wrote
    return risks, transport


def test_reminders_for_one_person_go_as_one_digest(
    db: Engine,
    session: Session,
    services: dict[str, int],
    raise_risk: Callable[..., Risk],
) -> None:
    risks, transport = _two_reminders(db, session, raise_risk)
    reminders = messages(session, category="reminder")
    people = contacts(session, services[MRH])
    trust_emails = {e for r in TRUST for e in people[r]}
    assert len(reminders) == 2 * len(trust_emails)  # one row per person per risk
    summary = dispatch(session, transport, FixedClock(REMINDER_DAY), POLICY)
    assert summary.sent_rows == len(reminders)
    assert summary.sent_messages == len(trust_emails)  # one email per person
    (ce,) = people["chief-executive"]
    to_ce = [m for m in transport.sent if ce in addresses(m, "To")]
    assert len(to_ce) == 1
    digest = to_ce[0]
    assert addresses(digest, "To") == {ce}
    assert digest["X-Peerwatch-Template"] == "digest"
    body = digest.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    for r in risks:
        assert f"SC-{r.id}" in text
    assert SC_DUE in text
    ce_rows = [m for m in reminders if m.to[0]["email"] == ce]
    assert len(ce_rows) == 2
    assert str(digest["X-Peerwatch-Key"]).split(",") == [m.idempotency_key for m in ce_rows]
    for m in ce_rows:
        session.refresh(m)
        assert m.status == OutboxStatus.SENT
        assert m.message_id == digest["Message-ID"]
    # Stable digest Message-ID, and nothing goes twice.
    assert build_digest(ce_rows, transport.sender, FixedClock(date(2027, 2, 1)))["Message-ID"] == digest["Message-ID"]
    assert dispatch(session, transport, FixedClock(date(2027, 1, 19)), POLICY).sent_messages == 0
    assert len([m for m in transport.sent if ce in addresses(m, "To")]) == 1


def test_letters_are_never_combined(session: Session, raise_risk: Callable[..., Risk]) -> None:
    for r in (raise_risk("SC"), raise_risk("SC")):
        notify(session, r.id)  # type: ignore[arg-type]
    transport = MemoryTransport()
    dispatch(session, transport, FixedClock(NOTIFIED), POLICY)
    assert len(transport.sent) == 2
    assert all(m["X-Peerwatch-Template"] == "formal_notification" for m in transport.sent)


# --------------------------------------------------------------------------- retries

T0 = datetime(2026, 12, 18, 12, tzinfo=UTC)  # the letter is written at noon London = noon UTC in December


def at(seconds: float) -> FixedClock:
    return FixedClock(T0 + timedelta(seconds=seconds))


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
