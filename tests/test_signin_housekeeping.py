"""Sign-in housekeeping (states/services/signin_housekeeping.py): sign-in attempts, and web sessions
ended or past their lifetime, older than the retention (90 days by default,
PEERWATCH_SIGNIN_RECORDS_DAYS) are deleted in batches, with one audit event giving the counts and
no personal data; live sessions and recent records stay. Run by an administrator
(``peerwatch user purge-sign-ins``) and by the daily chase flow, its counts in the run's result."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from models import AuditEvent
from models.web import SignInAttempt, WebSession
from states.clock import FixedClock, SystemClock
from states.engine.system import SYSTEM_PRINCIPAL
from states.errors import InvalidInput, PermissionDenied
from states.principal import Principal
from states.roles import AUDITOR, NETWORK_MANAGER
from states.services import signin, signin_housekeeping
from tests import support_accounts
from tests.support_cli import PEERWATCH, TIMEOUT, cli_env

NOW = datetime(2026, 12, 11, 12, 0, tzinfo=UTC)
SECRET_EMAIL = "someone.private@example.nhs.uk"
SECRET_ADDRESS = "203.0.113.77"


def _world(db: Engine, now: datetime = NOW) -> dict[str, int]:
    """Attempts and sessions of every age and state around a 90-day retention; their ids by name."""
    user = support_accounts.account(db, "Hana Keeping", (NETWORK_MANAGER,))
    old, recent = now - timedelta(days=91), now - timedelta(days=89)
    rows: dict[str, SignInAttempt | WebSession] = {}
    for name, at in (("old_attempt", old), ("recent_attempt", recent)):
        rows[name] = SignInAttempt(at=at, account_id=None, email_given=SECRET_EMAIL, address=SECRET_ADDRESS, ok=False)

    def web(name: str, created: datetime, ended: datetime | None, hours: int = 12) -> None:
        rows[name] = WebSession(token_hash=f"hash-{name}", user_id=user.user_id, csrf="c", created_at=created,
                                last_seen_at=created, expires_at=created + timedelta(hours=hours), ended_at=ended,
                                ended_reason="signed_out" if ended else None, address=SECRET_ADDRESS)  # fmt: skip

    web("ended_long_ago", old - timedelta(days=1), old)
    web("expired_long_ago", old - timedelta(days=1), None)  # never signed out: past its lifetime long ago
    web("ended_recently", recent, recent)
    web("expired_recently", recent, None)
    web("live", now - timedelta(minutes=5), None)
    web("old_but_ended_recently", old, recent, hours=24 * 10)  # started long ago, ended within the retention
    with Session(db) as s:
        for r in rows.values():
            s.add(r)
        s.commit()
        return {k: int(v.id) for k, v in rows.items()}  # type: ignore[arg-type]


def _left(db: Engine, ids: dict[str, int]) -> set[str]:
    with Session(db) as s:
        attempts = set(s.exec(select(SignInAttempt.id)))
        sessions = set(s.exec(select(WebSession.id)))
    return {k for k, v in ids.items() if (v in attempts if k.endswith("attempt") else v in sessions)}


def _purges(db: Engine) -> list[AuditEvent]:
    with Session(db) as s:
        return list(
            s.exec(select(AuditEvent).where(AuditEvent.trigger == "purge_sign_ins").order_by(col(AuditEvent.id)))
        )


def test_old_records_go_in_batches_live_and_recent_ones_stay_and_one_event_gives_the_counts(db: Engine) -> None:
    admin = support_accounts.account(db, "Ada Admin", ("administrator",))
    ids = _world(db)
    done = signin_housekeeping.purge_sign_ins(db, admin, FixedClock(NOW), batch=1)  # one row a transaction
    assert (done.attempts, done.sessions, done.days) == (1, 2, 90)
    assert _left(db, ids) == {"recent_attempt", "ended_recently", "expired_recently", "live", "old_but_ended_recently"}
    (event,) = _purges(db)
    assert event.role == "administrator" and event.kind == "installation"
    assert event.data["sign_in_attempts"] == 1 and event.data["web_sessions"] == 2
    text = json.dumps(event.data)
    assert SECRET_EMAIL not in text and SECRET_ADDRESS not in text and "Hana" not in text
    again = signin_housekeeping.purge_sign_ins(db, admin, FixedClock(NOW))
    assert again.total == 0 and len(_purges(db)) == 1  # nothing deleted, nothing recorded


def test_the_retention_is_a_setting_never_shorter_than_the_throttles(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _world(db)
    monkeypatch.setenv("PEERWATCH_SIGNIN_RECORDS_DAYS", "30")
    done = signin_housekeeping.purge_sign_ins(db, SYSTEM_PRINCIPAL, FixedClock(NOW))
    assert done.days == 30 and _left(db, ids) == {"live"}
    assert _purges(db)[-1].role == "system"
    # one day kept, but a failure within the throttle's window and lock (2 days here) still counts
    monkeypatch.setenv("PEERWATCH_SIGNIN_WINDOW_MINUTES", str(24 * 60))
    monkeypatch.setenv("PEERWATCH_SIGNIN_LOCK_MINUTES", str(24 * 60))
    with Session(db) as s:
        s.add(SignInAttempt(at=NOW - timedelta(hours=36), email_given="x@example.nhs.uk", ok=False))
        s.commit()
    assert signin_housekeeping.purge_sign_ins(db, SYSTEM_PRINCIPAL, FixedClock(NOW), days=1).attempts == 0
    for bad in ("0", "3651", "ninety", "9" * 30):
        monkeypatch.setenv("PEERWATCH_SIGNIN_RECORDS_DAYS", bad)
        with pytest.raises(InvalidInput, match="PEERWATCH_SIGNIN_RECORDS_DAYS"):
            signin_housekeeping.purge_sign_ins(db, SYSTEM_PRINCIPAL, FixedClock(NOW))


@pytest.mark.parametrize("roles", [(NETWORK_MANAGER,), (AUDITOR,)])
def test_only_an_administrator_or_the_system_purges(db: Engine, roles: tuple[str, ...]) -> None:
    someone = support_accounts.account(db, "Nobody Special", roles)
    ids = _world(db)
    with pytest.raises(PermissionDenied, match="only an administrator may"):
        signin_housekeeping.purge_sign_ins(db, someone, FixedClock(NOW))
    assert len(_left(db, ids)) == len(ids) and not _purges(db)


def test_a_signed_in_session_survives_a_purge_and_still_works(db: Engine) -> None:
    p = support_accounts.account(db, "Liv Live", (NETWORK_MANAGER,), email="liv@example.nhs.uk")
    with Session(db) as s:
        signin.set_password(s, p, SystemClock(), None, "quilted marmot evening drizzle 83")
        s.commit()
    done = signin.sign_in(db, "liv@example.nhs.uk", "quilted marmot evening drizzle 83", None, SystemClock())
    signin_housekeeping.purge_sign_ins(db, SYSTEM_PRINCIPAL, SystemClock(), days=1)
    with Session(db) as s:
        assert signin.session_principal(s, done.token, SystemClock()) is not None


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PEERWATCH, *args], env=cli_env(), capture_output=True, text=True, timeout=TIMEOUT)


def test_the_command_purges_for_an_administrator(db_url: str, db: Engine, me: Principal) -> None:
    now = datetime.now(UTC)
    ids = _world(db, now)
    proc = _cli("--json", "user", "purge-sign-ins", "--days", "90")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["sign_in_attempts"], out["web_sessions"], out["days"]) == (1, 2, 90)
    assert "live" in _left(db, ids) and "old_attempt" not in _left(db, ids)
    assert _purges(db)[-1].user_id == me.user_id


def test_the_command_is_refused_to_anyone_else(db_url: str, db: Engine) -> None:
    support_accounts.me(db, roles=(NETWORK_MANAGER,))
    ids = _world(db, datetime.now(UTC))
    proc = _cli("user", "purge-sign-ins")
    assert proc.returncode == 2 and "only an administrator may" in proc.stderr
    assert len(_left(db, ids)) == len(ids)


@pytest.mark.usefixtures("prefect_harness", "training")
def test_the_daily_chase_purges_and_says_how_many(db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.chase import chase  # lazy: Prefect only for this test

    monkeypatch.setenv("PEERWATCH_ANCHOR_DIR", str(tmp_path / "anchors"))
    ids = _world(db, datetime.now(UTC))
    result = chase()
    assert result["sign_ins_purged"] == {"attempts": 1, "sessions": 2}
    assert _left(db, ids) == {"recent_attempt", "ended_recently", "expired_recently", "live", "old_but_ended_recently"}
    assert chase()["sign_ins_purged"] == {"attempts": 0, "sessions": 0}
    with Session(db) as s:
        assert (
            s.exec(select(func.count()).select_from(AuditEvent).where(AuditEvent.trigger == "purge_sign_ins")).one()
            == 1
        )
