"""Signing in to the web application (states/services/signin.py): the password policy, Argon2id
hashes, sessions with idle and absolute expiry, throttles per account and per address, single
sign-on mapping, and the audit of each, on a real database with a clock the test moves."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models import AuditEvent, RefusedAttempt
from models.accounts import User
from models.web import SignInAttempt, WebSession
from states.errors import InvalidInput, PermissionDenied, SignInRefused
from states.principal import Principal
from states.roles import ADMINISTRATOR, AUDITOR, NETWORK_MANAGER
from states.services import accounts, signin
from states.services.signin_policy import check_password_policy
from tests import support_accounts

PASSPHRASE = "lantern orchard velvet compass"
EMAIL = "asha.patel@example.nhs.uk"


class Clock:
    """A clock the test moves on."""

    def __init__(self) -> None:
        self.at = datetime(2026, 12, 11, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def advance(self, **kw: float) -> None:
        self.at += timedelta(**kw)


@pytest.fixture
def tick() -> Clock:
    return Clock()


@pytest.fixture
def admin(db: Engine) -> Principal:
    return support_accounts.account(db, "Ada Admin", (ADMINISTRATOR,), email="ada.admin@example.nhs.uk")


@pytest.fixture
def asha(db: Engine, admin: Principal, tick: Clock) -> Principal:
    """A Network Manager with a password set by an administrator."""
    p = support_accounts.account(db, "Dr Asha Patel", (NETWORK_MANAGER,), email=EMAIL)
    with Session(db) as s:
        signin.set_password(s, admin, tick, p.user_id, PASSPHRASE)
        s.commit()
    return p


def _audit(db: Engine, user_id: int, action: str) -> list[AuditEvent]:
    with Session(db) as s:
        return list(
            s.exec(
                select(AuditEvent).where(
                    AuditEvent.kind == "account", AuditEvent.item_id == user_id, AuditEvent.trigger == action
                )
            ).all()
        )


def _refusals(db: Engine) -> list[RefusedAttempt]:
    with Session(db) as s:
        return list(s.exec(select(RefusedAttempt).where(RefusedAttempt.trigger == "sign_in")).all())


# ---------------------------------------------------------------- the policy


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "at least 12 characters"),
        ("elevenchars", "at least 12 characters"),
        ("x" * 257, "at most 256"),
        ("Password123456!", "too common"),
        ("QWERTYUIOP1234", "too common"),
        ("correct horse battery staple", "too common"),
        ("aaaaaaaaaaaaaaaa", "too common"),
        ("abababababababab", "too common"),
        ("abcdefghijklmnop", "too common"),
        ("Asha Patel 2026!!", "your name"),
        ("asha.patel-123456", "your name"),
        ("peerwatch nhs 2026", "your name"),
        ("two\nlines of a password", "control characters"),
    ],
)
def test_the_policy_refuses_with_one_reason(password: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason) as e:
        check_password_policy(password, name="Dr Asha Patel", email=EMAIL)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "password",
    [
        PASSPHRASE,
        "twelve chars",  # exactly 12: no composition rules
        "grüße aus köln am rhein",
        "日本語のパスフレーズはとても長い",
        "🦔🌵🚲 hedgehog cactus bicycle",
        "Patel's lantern orchard velvet",  # a name inside a long passphrase is fine
        ("lantern orchard velvet " * 12)[:256],  # the longest allowed
    ],
)
def test_long_passphrases_pass_in_any_script(password: str) -> None:
    check_password_policy(password, name="Dr Asha Patel", email=EMAIL)


def test_the_minimum_length_and_an_extra_denylist_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEERWATCH_PASSWORD_MIN_LENGTH", "16")
    with pytest.raises(InvalidInput, match="at least 16"):
        check_password_policy("fifteen letters")
    monkeypatch.delenv("PEERWATCH_PASSWORD_MIN_LENGTH")
    check_password_policy("severn estuary bore")
    extra = tmp_path / "deny.txt"
    extra.write_text("# the local hospital's motto\nSevern Estuary Bore\n")
    monkeypatch.setenv("PEERWATCH_PASSWORD_DENYLIST", str(extra))
    with pytest.raises(InvalidInput, match="too common"):
        check_password_policy("severn estuary bore")


# ---------------------------------------------------------------- setting a password


def test_the_hash_is_argon2id_and_the_password_never_reaches_the_audit(
    db: Engine, admin: Principal, asha: Principal
) -> None:
    with Session(db) as s:
        user = s.get(User, asha.user_id)
        assert user is not None and user.password_hash is not None
        assert user.password_hash.startswith("$argon2id$")
        assert PASSPHRASE not in user.password_hash
    [event] = _audit(db, asha.user_id, "password_set")
    assert event.user_id == admin.user_id and event.role == ADMINISTRATOR
    assert PASSPHRASE not in json.dumps(event.data)


def test_one_sets_ones_own_password_and_only_an_administrator_anothers(
    db: Engine, asha: Principal, tick: Clock
) -> None:
    other = support_accounts.account(db, "Ben Other", (NETWORK_MANAGER,))
    with Session(db) as s:
        with pytest.raises(PermissionDenied, match="only an administrator"):
            signin.set_password(s, asha, tick, other.user_id, "a perfectly fine passphrase")
        with pytest.raises(InvalidInput, match="at least 12"):
            signin.set_password(s, asha, tick, None, "too short")
        signin.set_password(s, asha, tick, None, "a perfectly fine passphrase")
        s.commit()
    assert signin.sign_in(db, EMAIL, "a perfectly fine passphrase", "10.0.0.1", tick).user_id == asha.user_id


def test_the_password_is_compared_as_unicode_text_not_bytes(db: Engine, admin: Principal, asha: Principal, tick: Clock) -> None:  # fmt: skip
    """Typed on a device that composes accents differently (NFD), the same passphrase signs in."""
    composed = "café crème brûlée après-midi"
    with Session(db) as s:
        signin.set_password(s, admin, tick, asha.user_id, composed)
        s.commit()
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    assert signin.sign_in(db, EMAIL, decomposed, None, tick).user_id == asha.user_id


def test_a_hash_made_with_older_parameters_is_replaced_on_sign_in(db: Engine, asha: Principal, tick: Clock) -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSPHRASE)
    with Session(db) as s:
        user = s.get(User, asha.user_id)
        assert user is not None
        user.password_hash = old
        s.add(user)
        s.commit()
    signin.sign_in(db, EMAIL, PASSPHRASE, None, tick)
    with Session(db) as s:
        user = s.get(User, asha.user_id)
        assert user is not None and user.password_hash is not None
    assert user.password_hash != old and not PasswordHasher().check_needs_rehash(user.password_hash)
    assert signin.sign_in(db, EMAIL, PASSPHRASE, None, tick).user_id == asha.user_id


# ---------------------------------------------------------------- signing in and sessions


def test_signing_in_makes_a_session_and_an_audit_event(db: Engine, asha: Principal, tick: Clock) -> None:
    done = signin.sign_in(db, "  Asha.Patel@Example.NHS.uk ", PASSPHRASE, "10.0.0.1", tick)
    assert done.user_id == asha.user_id and len(done.token) >= 40 and len(done.csrf) >= 40
    assert done.expires_at == tick.now() + timedelta(hours=12)
    with Session(db) as s:
        row = s.get(WebSession, done.session_id)
        assert row is not None and done.token not in row.token_hash and row.via == "password"
        found = signin.session_principal(s, done.token, tick)
    assert found is not None
    principal, info = found
    assert principal.user_id == asha.user_id and principal.via == "web" and principal.holds(NETWORK_MANAGER)
    assert info.csrf == done.csrf and info.id == done.session_id
    [event] = _audit(db, asha.user_id, "signed_in")
    assert event.user_id == asha.user_id and event.data["session_id"] == done.session_id
    assert PASSPHRASE not in json.dumps(event.data) and done.token not in json.dumps(event.data)


def test_an_auditor_signs_in_too(db: Engine, admin: Principal, tick: Clock) -> None:
    """Signing in is done in no role, so a read-only role does not stop it."""
    aud = support_accounts.account(db, "Ida Auditor", (AUDITOR,), email="ida@example.nhs.uk")
    with Session(db) as s:
        signin.set_password(s, admin, tick, aud.user_id, PASSPHRASE)
        s.commit()
    assert signin.sign_in(db, "ida@example.nhs.uk", PASSPHRASE, None, tick).user_id == aud.user_id


def test_every_failure_gets_the_same_message_and_is_recorded(db: Engine, admin: Principal, asha: Principal, tick: Clock) -> None:  # fmt: skip
    nopass = support_accounts.account(db, "No Password", (NETWORK_MANAGER,), email="nopass@example.nhs.uk")
    messages = []
    for email, password in [
        (EMAIL, "wrong passphrase entirely"),
        ("nobody@example.nhs.uk", PASSPHRASE),
        ("nopass@example.nhs.uk", ""),
        (EMAIL, "x" * 5000),
        (EMAIL + "\x00", PASSPHRASE),  # PostgreSQL refuses a NUL in a query: never sent to it
    ]:
        with pytest.raises(SignInRefused) as e:
            signin.sign_in(db, email, password, "10.0.0.9", tick)
        messages.append(str(e.value))
    assert set(messages) == {signin.REFUSED}
    refused = _refusals(db)
    assert [r.user_id for r in refused] == [asha.user_id, None, nopass.user_id, asha.user_id, None]
    assert refused[1].data["params"]["email"] == "nobody@example.nhs.uk"
    everything = json.dumps([r.data for r in refused]) + " ".join(r.reason for r in refused)
    assert PASSPHRASE not in everything and "wrong passphrase" not in everything
    with Session(db) as s:
        assert s.exec(select(WebSession)).all() == []


def test_a_disabled_accounts_sessions_are_dead_and_it_cannot_sign_in(
    db: Engine, admin: Principal, asha: Principal, tick: Clock
) -> None:
    done = signin.sign_in(db, EMAIL, PASSPHRASE, None, tick)
    with Session(db) as s:
        accounts.disable_user(s, admin, tick, str(asha.user_id))
        s.commit()
    with Session(db) as s:
        assert signin.session_principal(s, done.token, tick) is None
    with pytest.raises(SignInRefused, match=signin.REFUSED):
        signin.sign_in(db, EMAIL, PASSPHRASE, None, tick)
    assert _refusals(db)[-1].reason == "account is disabled"


def test_idle_timeout_and_absolute_lifetime(db: Engine, asha: Principal, tick: Clock) -> None:
    idle = signin.sign_in(db, EMAIL, PASSPHRASE, None, tick)
    tick.advance(minutes=29)
    with Session(db) as s:
        assert signin.session_principal(s, idle.token, tick) is not None  # used: idle time starts again
    tick.advance(minutes=29)
    with Session(db) as s:
        assert signin.session_principal(s, idle.token, tick) is not None
    tick.advance(minutes=31)
    with Session(db) as s:
        assert signin.session_principal(s, idle.token, tick) is None

    busy = signin.sign_in(db, EMAIL, PASSPHRASE, None, tick)
    for _ in range(12 * 3 - 1):  # used every 20 minutes for just under 12 hours
        tick.advance(minutes=20)
        with Session(db) as s:
            assert signin.session_principal(s, busy.token, tick) is not None
    tick.advance(minutes=20)
    with Session(db) as s:
        assert signin.session_principal(s, busy.token, tick) is None  # 12 hours after signing in
        assert signin.session_principal(s, "not-a-token", tick) is None
        assert signin.session_principal(s, "", tick) is None


def test_the_timeouts_come_from_the_environment(db: Engine, asha: Principal, tick: Clock, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("PEERWATCH_WEB_IDLE_MINUTES", "5")
    monkeypatch.setenv("PEERWATCH_WEB_SESSION_HOURS", "1")
    done = signin.sign_in(db, EMAIL, PASSPHRASE, None, tick)
    assert done.expires_at == tick.now() + timedelta(hours=1)
    tick.advance(minutes=6)
    with Session(db) as s:
        assert signin.session_principal(s, done.token, tick) is None


def test_last_seen_is_written_at_most_once_a_minute(db: Engine, asha: Principal, tick: Clock) -> None:
    done = signin.sign_in(db, EMAIL, PASSPHRASE, None, tick)
    start = tick.now()
    tick.advance(seconds=30)
    with Session(db) as s:
        found = signin.session_principal(s, done.token, tick)
        assert found is not None and found[1].last_seen_at == start
    tick.advance(seconds=40)
    with Session(db) as s:
        signin.session_principal(s, done.token, tick)
    with Session(db) as s:
        row = s.get(WebSession, done.session_id)
        user = s.get(User, asha.user_id)
        assert row is not None and user is not None
        assert row.last_seen_at == tick.now() == user.last_seen_at


def test_signing_out_ends_the_session(db: Engine, asha: Principal, tick: Clock) -> None:
    done = signin.sign_in(db, EMAIL, PASSPHRASE, None, tick)
    other = signin.sign_in(db, EMAIL, PASSPHRASE, None, tick)
    assert signin.sign_out(db, done.token, tick) is True
    assert signin.sign_out(db, done.token, tick) is False
    with Session(db) as s:
        assert signin.session_principal(s, done.token, tick) is None
        assert signin.session_principal(s, other.token, tick) is not None  # another browser stays in
    [event] = _audit(db, asha.user_id, "signed_out")
    assert event.data["session_id"] == done.session_id and event.user_id == asha.user_id


def test_setting_a_password_ends_the_accounts_sessions(db: Engine, admin: Principal, asha: Principal, tick: Clock) -> None:  # fmt: skip
    kept = signin.sign_in(db, EMAIL, PASSPHRASE, None, tick)
    gone = signin.sign_in(db, EMAIL, PASSPHRASE, None, tick)
    with Session(db) as s:
        signin.set_password(s, asha, tick, None, "another long passphrase", keep_session_id=kept.session_id)
        s.commit()
    with Session(db) as s:
        assert signin.session_principal(s, kept.token, tick) is not None
        assert signin.session_principal(s, gone.token, tick) is None
    with pytest.raises(SignInRefused):
        signin.sign_in(db, EMAIL, PASSPHRASE, None, tick)


# ---------------------------------------------------------------- throttles


def test_five_failures_lock_the_account_for_fifteen_minutes(db: Engine, asha: Principal, tick: Clock) -> None:
    for i in range(5):
        with pytest.raises(SignInRefused, match=signin.REFUSED):
            signin.sign_in(db, EMAIL, f"wrong guess number {i}", f"10.0.0.{i}", tick)
        tick.advance(minutes=1)
    # the fifth failure at 09:04 (London is on UTC in December) locks the account until 09:19
    with pytest.raises(SignInRefused, match="too many failed sign-ins: try again after 09:19"):
        signin.sign_in(db, EMAIL, PASSPHRASE, "10.0.1.1", tick)  # even the right password, from elsewhere
    assert _refusals(db)[-1].reason.startswith("throttled until")
    tick.advance(minutes=13)
    with pytest.raises(SignInRefused, match="too many"):
        signin.sign_in(db, EMAIL, PASSPHRASE, "10.0.1.1", tick)
    tick.advance(minutes=1, seconds=1)
    assert signin.sign_in(db, EMAIL, PASSPHRASE, "10.0.1.1", tick).user_id == asha.user_id
    with pytest.raises(SignInRefused, match=signin.REFUSED):  # a success starts the count again
        signin.sign_in(db, EMAIL, "wrong once more", "10.0.1.1", tick)
    assert signin.sign_in(db, EMAIL, PASSPHRASE, "10.0.1.1", tick).user_id == asha.user_id


def test_guesses_sent_at_once_reach_the_password_check_no_more_than_the_limit(
    db: Engine, asha: Principal, tick: Clock
) -> None:
    """The reviewer's probe: 16 wrong passwords sent in parallel were all checked (the throttle
    read the failures before any of them was written). Each attempt is now reserved first and
    counts only those reserved before it: five are checked, the rest refused as throttled."""
    from concurrent.futures import ThreadPoolExecutor  # lazy: only this test

    def guess(i: int) -> str:
        try:
            signin.sign_in(db, EMAIL, f"parallel wrong guess {i}", f"10.0.2.{i}", tick)
        except SignInRefused as refused:
            return str(refused)
        return "signed in"

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(guess, range(16)))
    assert answers.count(signin.REFUSED) == 5, answers
    assert sum("too many failed sign-ins" in a for a in answers) == 11
    reasons = [r.reason for r in _refusals(db)]
    assert reasons.count("wrong password") == 5 and sum(r.startswith("throttled") for r in reasons) == 11


def test_an_unknown_email_locks_as_an_account_would(db: Engine, asha: Principal, tick: Clock) -> None:
    """The lock tells nothing about which emails have accounts."""
    for i in range(5):
        with pytest.raises(SignInRefused, match=signin.REFUSED):
            signin.sign_in(db, "Nobody@Example.nhs.uk", f"wrong guess number {i}", f"10.0.0.{i}", tick)
    with pytest.raises(SignInRefused, match="too many failed sign-ins"):
        signin.sign_in(db, "nobody@example.nhs.uk", PASSPHRASE, "10.0.1.1", tick)
    assert signin.sign_in(db, EMAIL, PASSPHRASE, "10.0.1.1", tick).user_id == asha.user_id  # others unaffected


def test_failures_spread_beyond_the_window_do_not_lock(db: Engine, asha: Principal, tick: Clock) -> None:
    for i in range(8):
        with pytest.raises(SignInRefused, match=signin.REFUSED):
            signin.sign_in(db, EMAIL, f"wrong guess number {i}", None, tick)
        tick.advance(minutes=4)  # 5 failures span 16 minutes: never 5 within 15
    assert signin.sign_in(db, EMAIL, PASSPHRASE, None, tick).user_id == asha.user_id


def test_twenty_failures_from_one_address_lock_that_address(db: Engine, asha: Principal, tick: Clock) -> None:
    for i in range(20):
        with pytest.raises(SignInRefused, match=signin.REFUSED):
            signin.sign_in(db, f"nobody{i}@example.nhs.uk", "some long passphrase", "192.0.2.7", tick)
    with pytest.raises(SignInRefused, match="too many failed sign-ins"):
        signin.sign_in(db, EMAIL, PASSPHRASE, "192.0.2.7", tick)
    assert signin.sign_in(db, EMAIL, PASSPHRASE, "192.0.2.8", tick).user_id == asha.user_id  # another address
    tick.advance(minutes=15, seconds=1)
    assert signin.sign_in(db, EMAIL, PASSPHRASE, "192.0.2.7", tick).user_id == asha.user_id


def test_the_throttles_come_from_the_environment(db: Engine, asha: Principal, tick: Clock, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("PEERWATCH_SIGNIN_ACCOUNT_FAILURES", "2")
    monkeypatch.setenv("PEERWATCH_SIGNIN_LOCK_MINUTES", "60")
    for _ in range(2):
        with pytest.raises(SignInRefused, match=signin.REFUSED):
            signin.sign_in(db, EMAIL, "not the passphrase", None, tick)
    tick.advance(minutes=59)
    with pytest.raises(SignInRefused, match="too many"):
        signin.sign_in(db, EMAIL, PASSPHRASE, None, tick)
    tick.advance(minutes=1, seconds=1)
    assert signin.sign_in(db, EMAIL, PASSPHRASE, None, tick).user_id == asha.user_id
    with Session(db) as s:
        oks = s.exec(select(SignInAttempt).where(col(SignInAttempt.ok))).all()
        assert len(oks) == 1


# ---------------------------------------------------------------- single sign-on

ISSUER = "http://127.0.0.1:9400"


def test_oidc_maps_by_verified_email_then_by_subject(db: Engine, asha: Principal, tick: Clock) -> None:
    first = signin.sign_in_oidc(db, issuer=ISSUER, subject="sub-asha", email="ASHA.PATEL@example.nhs.uk",
                                email_verified=True, address="10.0.0.5", clock=tick)  # fmt: skip
    assert first.user_id == asha.user_id
    [linked] = _audit(db, asha.user_id, "sso_linked")
    assert linked.data["issuer"] == ISSUER and linked.data["subject"] == "sub-asha"
    # Later, by subject alone: the provider's email may change
    again = signin.sign_in_oidc(db, issuer=ISSUER, subject="sub-asha", email="asha@elsewhere.example",
                                email_verified=False, address=None, clock=tick)  # fmt: skip
    assert again.user_id == asha.user_id
    with Session(db) as s:
        row = s.get(WebSession, again.session_id)
        assert row is not None and row.via == "oidc"
    assert [e.data["method"] for e in _audit(db, asha.user_id, "signed_in")] == ["oidc", "oidc"]
    # Another identity with the same email may not take the account over
    with pytest.raises(SignInRefused, match="no peerwatch account for this identity"):
        signin.sign_in_oidc(db, issuer=ISSUER, subject="sub-impostor", email=EMAIL, email_verified=True,
                            address=None, clock=tick)  # fmt: skip


def test_oidc_refuses_unverified_email_and_unknown_identities(db: Engine, asha: Principal, tick: Clock) -> None:
    for email, verified in [(EMAIL, False), ("stranger@example.org", True), (None, True)]:
        with pytest.raises(SignInRefused, match="no peerwatch account for this identity: ask an administrator"):
            signin.sign_in_oidc(db, issuer=ISSUER, subject="sub-x", email=email, email_verified=verified,
                                address=None, clock=tick)  # fmt: skip
    refused = _refusals(db)
    assert [r.user_id for r in refused] == [None, None, None]
    assert refused[0].data["params"]["email_verified"] is False
    with Session(db) as s:
        user = s.get(User, asha.user_id)
        assert user is not None and user.oidc_subject is None
        assert s.exec(select(WebSession)).all() == []


def test_an_administrator_links_an_identity_and_a_disabled_account_gets_none(
    db: Engine, admin: Principal, asha: Principal, tick: Clock
) -> None:
    with Session(db) as s:
        with pytest.raises(PermissionDenied, match="only an administrator"):
            signin.link_oidc(s, asha, tick, asha.user_id, ISSUER, "entra-123")
        with pytest.raises(InvalidInput, match="issuer URL"):
            signin.link_oidc(s, admin, tick, asha.user_id, "not a url", "entra-123")
        signin.link_oidc(s, admin, tick, asha.user_id, ISSUER, "entra-123")
        s.commit()
    with Session(db) as s, pytest.raises(InvalidInput, match="already linked"):
        signin.link_oidc(s, admin, tick, admin.user_id, ISSUER, "entra-123")
    done = signin.sign_in_oidc(db, issuer=ISSUER, subject="entra-123", email=None, email_verified=False,
                               address=None, clock=tick)  # fmt: skip
    assert done.user_id == asha.user_id
    with Session(db) as s:
        accounts.disable_user(s, admin, tick, str(asha.user_id))
        s.commit()
    with pytest.raises(SignInRefused, match="no peerwatch account"):
        signin.sign_in_oidc(db, issuer=ISSUER, subject="entra-123", email=None, email_verified=False,
                            address=None, clock=tick)  # fmt: skip
    assert _refusals(db)[-1].user_id == asha.user_id
