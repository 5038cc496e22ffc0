"""One poisoned row never stops the mail (issue 12, item 2, the dispatcher's half).

A stored value no mail header may hold (an address with CR/LF, a service name with U+2028)
made every dispatch exit with ``ValueError: Header values may not contain linefeed``, leaving
every letter queued. Now each message is built and sent inside its own guard: the poisoned one
becomes a ``failed`` incident naming the reason, the others go. The rows are written straight
into the database, as they could be by an older version or another program: entry validation
is not what is tested here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, text, update
from sqlmodel import Session, col, select

from cli.main import main
from models import Risk
from models.tables import OutboxMessage, OutboxStatus
from notifications.dispatch import dispatch, incident_rows, incidents
from notifications.transports import SmtpTransport
from states import engine
from states.clock import FixedClock
from states.policy import Policy
from tests.factories import person
from tests.mailservers import smtp_server

NOTIFIED = date(2026, 12, 18)
POLICY = Policy(max_send_attempts=3, retry_backoff_seconds=60)
TABLE = OutboxMessage.__table__  # type: ignore[attr-defined]


def _letter(session: Session, raise_risk: Callable[..., Risk], **kw: Any) -> OutboxMessage:
    """A real formal notification, written by the engine (queued, not rendered yet)."""
    risk = raise_risk("SC", **kw)
    engine.fire(
        session,
        "risk",
        risk.id,
        "send_formal_notification",
        principal=person("Dr Asha Patel", "network-manager"),
        clock=FixedClock(NOTIFIED),
    )
    session.commit()
    (row,) = session.exec(
        select(OutboxMessage).where(OutboxMessage.item_id == risk.id, OutboxMessage.template == "formal_notification")
    )
    return row


def _copies(
    session: Session, row: OutboxMessage, n: int, poison: dict[int, Callable[[dict[str, Any]], None]]
) -> list[int]:
    """``n`` copies of ``row`` inserted straight into the table (new keys); ``poison[i]`` spoils copy i."""
    base = row.model_dump()
    base.pop("id")
    copies = []
    for i in range(n):
        r = {**base, "idempotency_key": f"{row.idempotency_key}:copy{i}", "to": [dict(p) for p in row.to]}
        if i in poison:
            poison[i](r)
        copies.append(r)
    session.execute(insert(TABLE), copies)
    session.commit()
    keys = [c["idempotency_key"] for c in copies]
    return [m.id for m in session.exec(select(OutboxMessage).where(col(OutboxMessage.idempotency_key).in_(keys)))]  # type: ignore[misc]


def _crlf_address(r: dict[str, Any]) -> None:
    r["to"][0]["email"] = "chief.executive@midland-royal.nhs.uk\r\nBcc: everyone@example.org"


def test_one_poisoned_row_among_100_the_99_others_are_delivered(
    session: Session,
    raise_risk: Callable[..., Risk],
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = _letter(session, raise_risk)
    ids = _copies(session, good, 99, {41: _crlf_address})
    poisoned = session.exec(
        select(OutboxMessage).where(OutboxMessage.idempotency_key == f"{good.idempotency_key}:copy41")
    ).one()
    assert len(ids) + 1 == 100
    with smtp_server() as (port, server):
        summary = dispatch(session, SmtpTransport("127.0.0.1", port, timeout=10), FixedClock(NOTIFIED), POLICY)
    assert (summary.sent_messages, summary.failed, summary.unsendable) == (99, 1, 1)
    assert len(server.messages) == 99
    assert len({str(m["Message-ID"]) for m in server.messages}) == 99
    assert not any("everyone@example.org" in str(m) for m in server.envelopes)  # no header was injected
    session.expire_all()
    rows = list(session.exec(select(OutboxMessage).where(OutboxMessage.template == "formal_notification")))
    assert sorted(r.status for r in rows).count(OutboxStatus.SENT) == 99
    session.refresh(poisoned)
    assert poisoned.status == OutboxStatus.FAILED
    assert poisoned.last_error is not None
    assert "letter could not be built" in poisoned.last_error and "U+000D" in poisoned.last_error
    assert "the address" in poisoned.last_error
    # An incident, shown where operators look.
    assert [r.id for r in incidents(session, FixedClock(NOTIFIED).now()) if r.status == OutboxStatus.FAILED] == [
        poisoned.id
    ]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["--json", "--as-of", NOTIFIED.isoformat(), "outbox", "list", "--incidents"])
    assert exit_.value.code == 0
    listed = [o for o in json.loads(capsys.readouterr().out) if o["status"] == "failed"]
    assert [o["id"] for o in listed] == [poisoned.id] and "U+000D" in listed[0]["error"]


def test_a_service_name_with_a_line_separator_fails_its_letter_alone(
    session: Session,
    services: dict[str, int],
    raise_risk: Callable[..., Risk],
) -> None:
    """The U+2028 case from the issue: a service name reaches the Subject."""
    sid = services["Midland Royal Major Trauma Centre"]
    session.execute(
        text("UPDATE service SET name = :n WHERE id = :i"), {"n": "Midland Royal\u2028Major Trauma Centre", "i": sid}
    )
    session.commit()
    poisoned = _letter(session, raise_risk)
    good = _letter(session, raise_risk, service="Severnside Trauma Unit")
    with smtp_server() as (port, server):
        summary = dispatch(session, SmtpTransport("127.0.0.1", port, timeout=10), FixedClock(NOTIFIED), POLICY)
    assert (summary.sent_messages, summary.unsendable) == (1, 1)
    assert [str(m["X-Peerwatch-Key"]) for m in server.messages] == [good.idempotency_key]
    session.refresh(poisoned)
    assert poisoned.status == OutboxStatus.FAILED
    assert "U+2028" in (poisoned.last_error or "") and "LINE SEPARATOR" in (poisoned.last_error or "")


def test_a_poisoned_row_in_a_digest_is_set_aside_and_the_rest_of_the_digest_goes(
    session: Session,
    raise_risk: Callable[..., Risk],
) -> None:
    letter = _letter(session, raise_risk)
    person = letter.to[0]
    base = {
        **letter.model_dump(),
        "category": "reminder",
        "template": "response_reminder",
        "to": [person],
        "cc": [],
        "context": None,
        "body_text": "Please respond.",
        "body_html": "<!doctype html><html><head><title>x</title></head><body><p>Please respond.</p></body></html>",
    }
    base.pop("id")
    rows = [
        {**base, "idempotency_key": f"reminder:{i}", "subject": f"Reminder {i}: SC-{i} response due"} for i in range(3)
    ]
    rows[1]["idempotency_key"] = (
        "reminder:1\r\nBcc: everyone@example.org"  # whatever the row holds that a header cannot
    )
    session.execute(insert(TABLE), rows)
    session.commit()
    with smtp_server() as (port, server):
        summary = dispatch(session, SmtpTransport("127.0.0.1", port, timeout=10), FixedClock(NOTIFIED), POLICY)
    digests = [m for m in server.messages if m["X-Peerwatch-Template"] == "digest"]
    assert len(digests) == 1
    assert str(digests[0]["X-Peerwatch-Key"]).split(",") == ["reminder:0", "reminder:2"]
    assert summary.unsendable == 1
    bad = session.exec(select(OutboxMessage).where(col(OutboxMessage.idempotency_key).startswith("reminder:1"))).one()
    assert bad.status == OutboxStatus.FAILED and "U+000D" in (bad.last_error or "")
    assert all(
        m.status == OutboxStatus.SENT
        for m in session.exec(
            select(OutboxMessage).where(col(OutboxMessage.idempotency_key).in_(["reminder:0", "reminder:2"]))
        )
    )


@pytest.mark.usefixtures("prefect_harness")
def test_the_dispatch_flow_goes_on_and_its_incidents_artifact_names_the_poisoned_row(
    session: Session,
    raise_risk: Callable[..., Risk],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.dispatch import dispatch as dispatch_flow

    good = _letter(session, raise_risk)
    _copies(session, good, 3, {1: _crlf_address})
    # due now: the flow runs on the server's clock (a run as of a later date is refused outside a
    # training database, and a training database never sends over SMTP)
    session.execute(update(TABLE).values(next_attempt_at=datetime.now(UTC) - timedelta(minutes=1)))
    session.commit()
    with smtp_server() as (port, server):
        monkeypatch.setenv("PEERWATCH_MAIL", "smtp")
        monkeypatch.setenv("PEERWATCH_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("PEERWATCH_SMTP_PORT", str(port))
        out = dispatch_flow()
    assert (out["emails_sent"], out["unsendable"], out["failed"], out["incidents"]) == (3, 1, 1, 1)
    assert len(server.messages) == 3
    poisoned = session.exec(
        select(OutboxMessage).where(OutboxMessage.idempotency_key == f"{good.idempotency_key}:copy1")
    ).one()
    (shown,) = [r for r in incident_rows(incidents(session, FixedClock(NOTIFIED).now())) if r["status"] == "failed"]
    assert shown["id"] == poisoned.id
    with get_client(sync_client=True) as client:
        arts = list(
            client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["outbox-incidents"])))
        )
    latest = max(arts, key=lambda a: a.created)  # type: ignore[arg-type, return-value]
    assert latest.type == "table"
    table = latest.data if isinstance(latest.data, list) else json.loads(str(latest.data))
    (row,) = [r for r in table if r["id"] == poisoned.id]
    assert row["status"] == "failed" and "U+000D" in row["error"]
