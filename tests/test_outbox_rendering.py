"""Letters rendered at dispatch from their stored context, and reminders gathered into digests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import Risk
from models.tables import Attachment, OutboxMessage, OutboxStatus
from notifications.build import build_digest, build_letter
from notifications.dispatch import dispatch, incidents
from notifications.render import rendered, thaw
from notifications.transports import MemoryTransport
from states.clock import FixedClock
from states.engine.letters import freeze
from states.engine.sweep import run_sweep
from states.errors import InvalidInput
from states.machines.risk import TRUST
from tests.support_outbox import (
    MRH,
    NOTIFIED,
    POLICY,
    REMINDER_DAY,
    SC_DUE,
    UTC,
    addresses,
    contacts,
    messages,
    notify,
    parse,
    sc,  # noqa: F401 (pytest fixtures)
)

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
