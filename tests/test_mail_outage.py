"""Mail outage: a real SMTP server (aiosmtpd on 127.0.0.1) stopped and restarted on one port.

While it is down, messages stay queued and are retried with back-off; after
``max_send_attempts`` failures a message is ``failed``, an incident seen in
``peerwatch outbox list --incidents``, in the dispatch flow's ``outbox-incidents`` artifact and
in the chase flow's summary; failed messages are still retried on a long back-off, so when the
server returns every message is delivered, exactly once (counted by Message-ID at the server).
"""

from __future__ import annotations

import json
import random
import socket
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from cli.main import main
from models import Risk
from models.tables import OutboxMessage, OutboxStatus
from notifications.dispatch import DispatchPolicy, backoff, dispatch, incidents
from notifications.errors import InvalidSetting
from notifications.transports import MemoryTransport, SmtpTransport
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock, SystemClock, local_date
from states.engine.sweep import run_sweep
from states.policy import Policy
from tests.factories import person

UTC = UTC
MRH = "Midland Royal Major Trauma Centre"
POLICY = Policy(max_send_attempts=3, retry_backoff_seconds=60)
DPOLICY = DispatchPolicy(failed_retry_cap_seconds=3600)
START = datetime(2026, 12, 14, 9, tzinfo=UTC)


class _Collector:
    def __init__(self) -> None:
        self.ids: Counter[str] = Counter()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import email

        raw = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        self.ids[str(email.message_from_bytes(raw)["Message-ID"]).strip()] += 1
        return "250 Message accepted for delivery"


class Server:
    """An aiosmtpd server that can be stopped and started again on the same port."""

    def __init__(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.handler = _Collector()
        self.controller: Any = None

    def up(self) -> None:
        from aiosmtpd.controller import Controller

        if self.controller is None:
            self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
            self.controller.start()

    def down(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def server() -> Any:
    srv = Server()
    yield srv
    srv.down()


def _new_letter(session: Session, services: dict[str, int], clock: FixedClock) -> int:
    """Raise an SC and send its formal notification: one letter queued."""
    today = clock.now().date()
    row = Risk(
        service_id=services[MRH],
        level="SC",
        title="SC found at visit",
        identified_on=today,
        visit_date=today,
        state="new",
    )
    out = engine.create(session, "risk", row, "raise", principal=person("panel lead", "network-manager"), clock=clock)
    engine.fire(
        session,
        "risk",
        out.row.id,
        "send_formal_notification",
        principal=person("Dr Asha Patel", "network-manager"),
        clock=clock,
    )  # type: ignore[arg-type]
    session.commit()
    return out.row.id  # type: ignore[return-value]


def _cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["--json", *args])
    out = capsys.readouterr()
    assert exit_.value.code == 0, out.err
    return json.loads(out.out)


def _sendable(session: Session) -> list[OutboxMessage]:
    return list(session.exec(select(OutboxMessage).where(col(OutboxMessage.status) != OutboxStatus.UNDELIVERABLE)))


def test_backoff_doubles_then_is_capped_at_24_hours() -> None:
    policy, dp = Policy(retry_backoff_seconds=300), DispatchPolicy()
    assert dp.failed_retry_cap_seconds == 86400
    assert [backoff(policy, dp, n).total_seconds() for n in (1, 2, 3, 5, 8, 9, 10, 1000)] == [
        300,
        600,
        1200,
        4800,
        38400,
        76800,
        86400,
        86400,
    ]


def test_dispatch_policy_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEERWATCH_FAILED_RETRY_CAP_SECONDS", "7200")
    assert DispatchPolicy.from_env().failed_retry_cap_seconds == 7200
    monkeypatch.setenv("PEERWATCH_SENDING_LEASE_SECONDS", "soon")
    with pytest.raises(InvalidSetting, match="PEERWATCH_SENDING_LEASE_SECONDS"):
        DispatchPolicy.from_env()


def test_failed_message_is_retried_on_long_backoff_and_incident_clears(
    session: Session,
    services: dict[str, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = FixedClock(START)
    _new_letter(session, services, clock)
    (row,) = _sendable(session)
    transport = MemoryTransport()
    transport.down = True
    t = START
    for expected in (OutboxStatus.QUEUED, OutboxStatus.QUEUED, OutboxStatus.FAILED):
        dispatch(session, transport, FixedClock(t), POLICY, dpolicy=DPOLICY)
        session.refresh(row)
        assert row.status == expected
        t = row.next_attempt_at
    assert row.attempts == 3 and row.next_attempt_at == t
    # failed: 60 * 2^2 = 240 s later it is tried again, still failing, and stays an incident
    s = dispatch(session, transport, FixedClock(t - timedelta(seconds=1)), POLICY, dpolicy=DPOLICY)
    assert (s.still_failed, s.sent_messages) == (0, 0)
    s = dispatch(session, transport, FixedClock(t), POLICY, dpolicy=DPOLICY)
    assert (s.still_failed, s.failed) == (1, 0)
    session.refresh(row)
    assert (row.status, row.attempts, row.next_attempt_at) == (OutboxStatus.FAILED, 4, t + timedelta(seconds=480))
    listed = _cli_json(capsys, "--as-of", "2026-12-14", "outbox", "list", "--incidents")
    assert [(m["id"], m["status"]) for m in listed] == [(row.id, "failed")]
    transport.down = False
    s = dispatch(session, transport, FixedClock(row.next_attempt_at), POLICY, dpolicy=DPOLICY)
    assert (s.sent_messages, s.redelivered) == (1, 1)
    session.refresh(row)
    assert (row.status, row.last_error) == (OutboxStatus.SENT, None)
    assert incidents(session, row.next_attempt_at + timedelta(days=1)) == []
    assert _cli_json(capsys, "outbox", "list", "--incidents") == []


def test_twenty_outages_every_message_delivered_exactly_once(
    db: Engine,
    session: Session,
    services: dict[str, int],
    server: Server,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rng = random.Random(20261214)
    t = START
    transport = SmtpTransport("127.0.0.1", server.port, timeout=5)
    outages = recoveries = 0
    saw_failed_incident = False
    ids: list[int] = []
    while recoveries < 20:
        server.down()
        outages += 1
        for _ in range(rng.randint(3, 5)):  # long enough for some messages to fail for good
            t += timedelta(minutes=rng.randint(10, 90))
            clock = FixedClock(t)
            if rng.random() < 0.7:
                ids.append(_new_letter(session, services, clock))
            s = dispatch(session, transport, clock, POLICY, dpolicy=DPOLICY)
            assert s.sent_messages == 0 and s.redelivered == 0
            session.expire_all()
            rows = _sendable(session)
            assert all(r.status in (OutboxStatus.QUEUED, OutboxStatus.FAILED, OutboxStatus.SENT) for r in rows)
            failed = [r for r in rows if r.status == OutboxStatus.FAILED]
            assert all(r.attempts >= POLICY.max_send_attempts for r in failed)
            if failed and not saw_failed_incident:
                listed = _cli_json(
                    capsys, "--as-of", t.date().isoformat(), "outbox", "list", "--incidents", "--status", "failed"
                )
                assert {m["id"] for m in listed} == {r.id for r in failed}
                saw_failed_incident = True
        server.up()
        recoveries += 1
        t += timedelta(minutes=rng.randint(1, 120))
        clock = FixedClock(t)
        if rng.random() < 0.5:
            ids.append(_new_letter(session, services, clock))
        dispatch(session, transport, clock, POLICY, dpolicy=DPOLICY)
        # a chase run during the outage queues reminders too: they go as digests
        run_sweep(db, clock, POLICY)
    assert outages >= 20 and saw_failed_incident
    # the server is up: everything due goes, failed ones included, within the capped back-off
    t += timedelta(seconds=DPOLICY.failed_retry_cap_seconds + 1)
    s = dispatch(session, transport, FixedClock(t), POLICY, dpolicy=DPOLICY)
    assert s.errors == []
    session.expire_all()
    rows = _sendable(session)
    assert len(ids) >= 20 and len(rows) >= len(ids)
    assert {r.status for r in rows} == {OutboxStatus.SENT}
    at_server = server.handler.ids
    assert all(n == 1 for n in at_server.values()), [k for k, n in at_server.items() if n > 1]
    assert set(at_server) == {r.message_id for r in rows}
    assert incidents(session, t) == [r for r in incidents(session, t) if r.status == OutboxStatus.UNDELIVERABLE]


@pytest.mark.usefixtures("prefect_harness")
def test_outage_incidents_reach_the_dispatch_artifact_and_the_chase_summary(
    session: Session,
    services: dict[str, int],
    server: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.chase import chase
    from flows.dispatch import dispatch as dispatch_flow

    monkeypatch.setenv("PEERWATCH_MAIL", "smtp")
    monkeypatch.setenv("PEERWATCH_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("PEERWATCH_SMTP_PORT", str(server.port))
    monkeypatch.setenv("PEERWATCH_MAX_SEND_ATTEMPTS", "1")
    # Days before today: outside a training database a run may catch up on a past date, never run
    # ahead of the server's clock, and a training database never sends over SMTP.
    cal = calendar_for("ENG")
    first = cal.subtract_working_days(local_date(SystemClock().now()), 10)
    day = [first.isoformat(), cal.add_working_days(first, 1).isoformat(), cal.add_working_days(first, 2).isoformat()]
    rid = _new_letter(session, services, FixedClock(first))
    out = dispatch_flow(as_of=day[0])  # the server is down
    assert (out["failed"], out["incidents"]) == (1, 1)
    with get_client(sync_client=True) as client:
        arts = list(
            client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["outbox-incidents"])))
        )
    assert any(a.type == "table" and f"risk {rid}" in str(a.data) for a in arts)
    summary = chase(as_of=day[1])
    assert summary["outbox_incidents"] == 1
    assert [(i["item"], i["status"]) for i in summary["incidents"]] == [(f"risk {rid}", "failed")]
    server.up()
    out = dispatch_flow(as_of=day[2])  # a day later: past the failed message's back-off
    assert (out["redelivered"], out["incidents"]) == (1, 0)
    assert chase(as_of=day[2])["outbox_incidents"] == 0
    assert len(server.handler.ids) == 1
