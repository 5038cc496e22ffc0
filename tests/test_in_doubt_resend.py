"""Letters left in doubt by a crash are resent once, with the same Message-ID (issue 12, item 3).

A dispatch over SMTP killed with SIGKILL while the relay holds the letter's DATA cannot know
whether the letter arrived. The row is *in doubt*; after ``in_doubt_resend_seconds`` (default one
hour) it is resent once, under the same Message-ID (receivers de-duplicate on it), and
``resent_at`` records the resend. An operator can hold it, resend it now, or mark it delivered.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from cli.main import main
from models import Risk
from models.tables import AuditEvent, OutboxMessage, OutboxStatus
from notifications.dispatch import DispatchPolicy, dispatch, incident_rows, incidents, is_in_doubt
from notifications.transports import SmtpTransport
from states import engine
from states.clock import FixedClock
from states.policy import Policy
from tests.factories import person
from tests.mailservers import Collector, free_port
from tests.support_accounts import me

UTC = UTC
NOTIFIED = date(2026, 12, 18)
NOON = datetime(2026, 12, 18, 12, tzinfo=UTC)  # FixedClock(NOTIFIED): noon London = noon UTC in December
LEASE = DispatchPolicy().sending_lease_seconds
POLICY = Policy(max_send_attempts=3, retry_backoff_seconds=60)
ROOT = Path(__file__).resolve().parents[1]
# The dispatcher as the flow runs it (PEERWATCH_MAIL=smtp), on the letter's day: a run as of a
# date after today is refused outside a training database, and a training database never uses SMTP.
DISPATCHER = """
import sys
from datetime import date
from sqlmodel import Session
from models import init_db
from notifications.dispatch import dispatch
from notifications.transports import transport_from_env
from states.clock import FixedClock
with Session(init_db(), expire_on_commit=False) as s:
    dispatch(s, transport_from_env(), FixedClock(date.fromisoformat(sys.argv[1])))
"""


class Hanging(Collector):
    """Takes the DATA, then (while ``hang``) never answers: the client dies waiting for the 250."""

    def __init__(self) -> None:
        super().__init__()
        self.hang = True

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        for _ in range(300):
            if not self.hang:
                break
            await asyncio.sleep(0.1)
        return reply


def at(seconds: float) -> FixedClock:
    return FixedClock(NOON + timedelta(seconds=seconds))


def _letter(session: Session, raise_risk: Callable[..., Risk]) -> OutboxMessage:
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
    return session.exec(select(OutboxMessage).where(OutboxMessage.template == "formal_notification")).one()


def test_a_letter_in_doubt_after_kill_9_is_resent_once_an_hour_later_with_the_same_message_id(
    session: Session,
    raise_risk: Callable[..., Risk],
    db_url: str,
) -> None:
    from aiosmtpd.controller import Controller

    row = _letter(session, raise_risk)
    handler, port = Hanging(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        env = {
            **os.environ,
            "PEERWATCH_DATABASE_URL": db_url,
            "PEERWATCH_MAIL": "smtp",
            "PEERWATCH_SMTP_HOST": "127.0.0.1",
            "PEERWATCH_SMTP_PORT": str(port),
        }
        proc = subprocess.Popen(
            [sys.executable, "-c", DISPATCHER, NOTIFIED.isoformat()],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while not handler.messages and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert handler.messages, proc.communicate(timeout=5)
        proc.send_signal(signal.SIGKILL)  # the relay has the letter; the dispatcher never hears the 250
        proc.communicate(timeout=10)  # waits, and closes the pipes (an open one is a ResourceWarning)
        handler.hang = False
        first_id = str(handler.messages[0]["Message-ID"])
        transport = SmtpTransport("127.0.0.1", port, timeout=10)

        session.expire_all()
        row = session.get(OutboxMessage, row.id)  # type: ignore[assignment]
        assert row is not None and row.status == OutboxStatus.SENDING and row.message_id == first_id

        summary = dispatch(session, transport, at(LEASE + 60), POLICY)  # the lease is over: recovered, in doubt
        assert (summary.in_doubt, summary.resent, summary.sent_messages) == (1, 0, 0)
        session.refresh(row)
        assert is_in_doubt(row) and row.resend_at == NOON + timedelta(seconds=LEASE + 60 + 3600)
        assert "resent once, with the same Message-ID" in (row.last_error or "")
        assert [r["status"] for r in incident_rows(incidents(session, at(LEASE + 60).now()))] == ["in doubt"]

        assert dispatch(session, transport, at(LEASE + 60 + 3000), POLICY).resent == 0  # not before the hour
        assert len(handler.messages) == 1

        summary = dispatch(session, transport, at(LEASE + 60 + 3600), POLICY)
        assert (summary.resent, summary.sent_messages) == (1, 1)
        assert dispatch(session, transport, at(LEASE + 60 + 90000), POLICY).sent_messages == 0  # once only
    finally:
        controller.stop()
    assert [str(m["Message-ID"]) for m in handler.messages] == [first_id, first_id]  # the receiver de-duplicates
    assert handler.messages[1]["X-Peerwatch-Resend"]
    session.refresh(row)
    assert (row.status, row.message_id, row.resent_at) == (
        OutboxStatus.SENT,
        first_id,
        NOON + timedelta(seconds=LEASE + 60 + 3600),
    )
    assert incidents(session, at(LEASE + 60 + 90000).now()) == []


def _crashed_digest(session: Session, raise_risk: Callable[..., Risk], resent: bool = False) -> list[OutboxMessage]:
    """Two reminders to one person, claimed as one digest and left ``sending`` by a crash."""
    letter = _letter(session, raise_risk)
    base = {
        **letter.model_dump(),
        "category": "reminder",
        "template": "response_reminder",
        "to": [letter.to[0]],
        "cc": [],
        "context": None,
        "body_text": "Please respond.",
        "status": OutboxStatus.SENDING,
        "attempts": 1,
        "next_attempt_at": NOON + timedelta(seconds=LEASE),
        "message_id": "<crashed-digest@peerwatch.invalid>",
        "body_html": "<!doctype html><html><head><title>r</title></head><body><p>Dear A,</p><p>Please respond.</p></body></html>",
        "resent_at": NOON if resent else None,
    }
    base.pop("id")
    session.execute(
        insert(OutboxMessage.__table__),
        [  # type: ignore[attr-defined]
            {**base, "idempotency_key": f"reminder:{i}", "subject": f"Reminder: SC-{i} response due"} for i in (1, 2)
        ],
    )
    session.commit()
    return list(
        session.exec(select(OutboxMessage).where(OutboxMessage.category == "reminder").order_by(OutboxMessage.id))
    )  # type: ignore[arg-type]


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["--json", *args])
    out = capsys.readouterr()
    return int(exit_.value.code or 0), (json.loads(out.out) if out.out.strip() else out.err)


def test_a_digest_in_doubt_is_resent_whole_under_its_message_id_and_the_operator_can_hold_or_settle_it(
    db: Engine,
    session: Session,
    raise_risk: Callable[..., Risk],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The operator's word is given now, on the server's clock, by the OS user mapped to
    Mo Operator's account (peer authentication): the letters stay on SMTP (no training database)."""
    from tests.mailservers import smtp_server

    me(db, ("operator",), name="Mo Operator")
    rows = _crashed_digest(session, raise_risk)
    ids = [str(r.id) for r in rows]
    with smtp_server() as (port, server):
        transport = SmtpTransport("127.0.0.1", port, timeout=10)
        assert dispatch(session, transport, at(LEASE + 1), POLICY).in_doubt == 2
        # The operator holds them: an hour later nothing is resent.
        code, out = _cli(capsys, "outbox", "in-doubt", *ids, "--hold")
        assert (code, out) == (0, {"hold": [int(i) for i in ids]})
        audit = list(session.exec(select(AuditEvent).where(AuditEvent.kind == "outbox").order_by(AuditEvent.id)))  # type: ignore[arg-type]
        assert [(a.item_id, a.trigger, a.actor, a.role) for a in audit] == [
            (int(i), "in_doubt_hold", "Mo Operator", "operator") for i in ids
        ]  # an audited change, on the chain
        assert dispatch(session, transport, at(LEASE + 7200), POLICY).resent == 0
        session.expire_all()
        assert all(is_in_doubt(r) and r.resend_at is None for r in rows)
        # Then asks for the resend now.
        code, _ = _cli(capsys, "outbox", "in-doubt", *ids, "--resend")
        assert code == 0
        summary = dispatch(session, transport, at(LEASE + 7300), POLICY)
        assert (summary.resent, summary.sent_rows) == (1, 2)
    (digest,) = [m for m in server.messages if m["X-Peerwatch-Template"] == "digest"]
    assert str(digest["Message-ID"]) == "<crashed-digest@peerwatch.invalid>"
    assert str(digest["X-Peerwatch-Key"]).split(",") == ["reminder:1", "reminder:2"]
    session.expire_all()
    assert all(r.status == OutboxStatus.SENT and r.resent_at is not None for r in rows)
    # A row that is not in doubt is refused, nothing changed.
    code, err = _cli(capsys, "outbox", "in-doubt", ids[0], "--delivered")
    assert code == 2 and "is not in doubt" in err


def test_an_operator_can_mark_a_letter_in_doubt_delivered_and_it_is_never_resent(
    db: Engine,
    session: Session,
    raise_risk: Callable[..., Risk],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.mailservers import smtp_server

    me(db, ("operator",), name="Mo Operator")
    rows = _crashed_digest(session, raise_risk)
    with smtp_server() as (port, server):
        transport = SmtpTransport("127.0.0.1", port, timeout=10)
        dispatch(session, transport, at(LEASE + 1), POLICY)
        code, _ = _cli(capsys, "outbox", "in-doubt", str(rows[0].id), str(rows[1].id), "--delivered")
        assert code == 0
        assert dispatch(session, transport, at(LEASE + 90000), POLICY).sent_rows == 0
    assert [m["X-Peerwatch-Template"] for m in server.messages] == [
        "formal_notification"
    ]  # the item's letter, not the digest
    session.expire_all()
    assert all(r.status == OutboxStatus.SENT and r.resent_at is None for r in rows)


def test_a_crash_during_the_resend_leaves_it_in_doubt_and_it_is_not_resent_a_second_time(
    session: Session,
    raise_risk: Callable[..., Risk],
) -> None:
    from tests.mailservers import smtp_server

    rows = _crashed_digest(session, raise_risk, resent=True)
    with smtp_server() as (port, server):
        transport = SmtpTransport("127.0.0.1", port, timeout=10)
        assert dispatch(session, transport, at(LEASE + 1), POLICY).in_doubt == 2
        assert dispatch(session, transport, at(LEASE + 90000), POLICY).sent_rows == 0
    assert [m["X-Peerwatch-Template"] for m in server.messages] == [
        "formal_notification"
    ]  # the item's letter, not the digest
    session.expire_all()
    assert all(is_in_doubt(r) and r.resend_at is None and "already resent once" in (r.last_error or "") for r in rows)


def test_the_wait_before_a_resend_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DispatchPolicy().in_doubt_resend_seconds == 3600
    monkeypatch.setenv("PEERWATCH_IN_DOUBT_RESEND_SECONDS", "600")
    assert DispatchPolicy.from_env().in_doubt_resend_seconds == 600
