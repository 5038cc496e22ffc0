"""``peerwatch user password`` and ``peerwatch user sso`` through the real command line, run as
the OS user of the test (peer authentication)."""

from __future__ import annotations

import subprocess

from sqlalchemy.engine import Engine
from sqlmodel import Session

from cli.demo_accounts import DEMO_PASSWORD, set_demo_passwords
from cli.seed import seed_cast, seed_reference
from models.accounts import User
from states.clock import SystemClock
from states.principal import Principal
from states.roles import NETWORK_MANAGER
from states.services import signin
from tests import support_accounts
from tests.support_cli import PEERWATCH, TIMEOUT, cli_env, ok

PASSPHRASE = "heron quarry mitten lagoon"


def _peerwatch(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PEERWATCH, *args], env=cli_env(), input=stdin, capture_output=True, text=True, timeout=TIMEOUT
    )


def _error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_setting_ones_own_password_then_signing_in(db_url: str, db: Engine, me: Principal) -> None:
    out = ok(_peerwatch("user", "password", "--password-stdin", stdin=PASSPHRASE + "\n"))
    assert "password set for account" in out and PASSPHRASE not in out
    with Session(db) as s:
        user = s.get(User, me.user_id)
        assert user is not None and user.email is not None and user.password_hash is not None
        email = user.email
    assert user.password_hash.startswith("$argon2id$")
    assert signin.sign_in(db, email, PASSPHRASE, None, SystemClock()).user_id == me.user_id


def test_an_administrator_sets_anothers_and_a_weak_one_is_refused(db_url: str, db: Engine, me: Principal) -> None:
    other = support_accounts.account(db, "Nadia Nm", (NETWORK_MANAGER,), email="nadia@example.nhs.uk")
    line = _error(_peerwatch("user", "password", "nadia@example.nhs.uk", "--password-stdin", stdin="letmein\n"))
    assert "at least 12 characters" in line
    line = _error(_peerwatch("user", "password", "nadia@example.nhs.uk", "--password-stdin", stdin="Password1234!\n"))
    assert "too common" in line
    ok(_peerwatch("user", "password", "nadia@example.nhs.uk", "--password-stdin", stdin=PASSPHRASE + "\n"))
    assert signin.sign_in(db, "nadia@example.nhs.uk", PASSPHRASE, None, SystemClock()).user_id == other.user_id
    line = _error(_peerwatch("user", "password", "nadia@example.nhs.uk"))  # no terminal to type in
    assert "--password-stdin" in line


def test_only_an_administrator_sets_anothers_password(db_url: str, db: Engine) -> None:
    support_accounts.me(db, roles=(NETWORK_MANAGER,))
    support_accounts.account(db, "Nadia Nm", (NETWORK_MANAGER,), email="nadia@example.nhs.uk")
    line = _error(_peerwatch("user", "password", "nadia@example.nhs.uk", "--password-stdin", stdin=PASSPHRASE))
    assert "only an administrator" in line
    ok(_peerwatch("user", "password", "--password-stdin", stdin=PASSPHRASE))


def test_linking_a_single_sign_on_identity(db_url: str, db: Engine, me: Principal) -> None:
    other = support_accounts.account(db, "Nadia Nm", (NETWORK_MANAGER,), email="nadia@example.nhs.uk")
    issuer = "https://login.microsoftonline.com/tenant-id/v2.0"
    out = ok(_peerwatch("user", "sso", str(other.user_id), "--issuer", issuer, "--subject", "AbC-123"))
    assert "signs on as AbC-123" in out
    assert "AbC-123" in ok(_peerwatch("user", "show", str(other.user_id)))
    assert "--remove" in _error(_peerwatch("user", "sso", str(other.user_id), "--issuer", issuer))
    ok(_peerwatch("user", "sso", str(other.user_id), "--remove"))
    with Session(db) as s:
        user = s.get(User, other.user_id)
        assert user is not None and user.oidc_subject is None


def test_the_demo_cast_signs_in_with_the_printed_passphrase(db: Engine, me: Principal) -> None:
    """As ``peerwatch demo`` does: the administrator adds the cast, each gets the demo's passphrase."""
    clock = SystemClock()
    with Session(db, expire_on_commit=False) as s:
        seed_reference(s)
        cast = seed_cast(s, me, clock)
        assert set_demo_passwords(s, me, clock) == len(cast) + 1  # and the administrator's own
        s.commit()
    done = signin.sign_in(db, cast["Ms Zara Ahmed"], DEMO_PASSWORD, None, clock)
    with Session(db) as s:
        found = signin.session_principal(s, done.token, clock)
    assert found is not None and found[0].name == "Ms Zara Ahmed" and found[0].holds(NETWORK_MANAGER)
