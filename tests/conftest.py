"""Shared fixtures: a fresh SQLite file per test, a frozen clock, the demo reference data,
and one Prefect test harness per session (only for tests that ask for it)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

# Before anything imports Prefect: a private home, and nothing sent anywhere.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="peerwatch-prefect-")
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("PEERWATCH_AS_OF", None)
# The audit chain's key, as a secrets manager would set it (states/engine/keys.py); tests of
# the key file and of a missing key set their own.
os.environ["PEERWATCH_AUDIT_KEY"] = "test-1:" + "5e" * 32
os.environ.pop("PEERWATCH_AUDIT_KEY_FILE", None)

from sqlalchemy.engine import Engine
from sqlmodel import Session

from models import Risk, init_db
from states import engine
from states.clock import FixedClock
from states.principal import Principal
from tests import support_accounts
from tests.databases import database_for_test, release
from tests.factories import MRH, person, reference_data


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database of this test's own: a fresh empty SQLite file, or, when
    ``PEERWATCH_TEST_DATABASE`` is set, a clean PostgreSQL schema at the head revision
    (tests/databases.py). Subprocesses inherit it through ``PEERWATCH_DATABASE_URL``."""
    url = database_for_test(tmp_path)
    monkeypatch.setenv("PEERWATCH_DATABASE_URL", url)
    monkeypatch.setenv("PEERWATCH_OUTBOX_DIR", f"{tmp_path}/outbox")
    monkeypatch.setenv("PEERWATCH_ANCHOR_DIR", f"{tmp_path}/anchors")
    yield url
    release(url)


@pytest.fixture
def db(db_url: str) -> Engine:
    return init_db(db_url)


@pytest.fixture
def session(db: Engine) -> Iterator[Session]:
    with Session(db, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def me(db: Engine) -> Principal:
    """The OS user running the tests, mapped to an account holding every network role and
    administrator for the whole installation: the CLI run by this test acts as it."""
    return support_accounts.me(db)


@pytest.fixture
def training(db: Engine) -> None:
    """This test's database is a training database (``peerwatch init --training``): the CLI
    takes ``--as-of`` and ``--as`` on actions, and letters are never sent over SMTP."""
    support_accounts.make_training(db)


@pytest.fixture
def clock() -> FixedClock:
    """Frozen at noon, Friday 11 December 2026, Europe/London."""
    return FixedClock(date(2026, 12, 11))


@pytest.fixture
def services(session: Session) -> dict[str, int]:
    """The reference networks, Trusts, services, contacts and reviewers (tests/factories.py);
    service name -> id."""
    out = reference_data(session)
    session.commit()
    return out


@pytest.fixture
def raise_risk(session: Session, services: dict[str, int], clock: FixedClock) -> Callable[..., Risk]:
    """Raise a risk through the engine and commit; returns the row."""

    def make(level: str = "SC", service: str = MRH, visit: date = date(2026, 12, 11), **fields: Any) -> Risk:
        row = Risk(
            service_id=services[service],
            level=level,
            title=f"{level} found at visit",
            identified_on=visit,
            visit_date=visit,
            state="new",
            **fields,
        )
        out = engine.create(
            session, "risk", row, "raise", principal=person("panel lead", "network-manager"), clock=clock
        )
        session.commit()
        assert isinstance(out.row, Risk)
        return out.row

    return make


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness  # lazy: Prefect only for the tests that ask for it

    with prefect_test_harness(server_startup_timeout=120):
        yield


# ---------------------------------------------------------------- password hashing cost

# Argon2id at the production parameters costs about 0.17 s a hash on these machines, and the web
# tests sign in hundreds of times. In-process, tests hash at the lowest cost argon2-cffi allows;
# the tests of hashing itself (test_signin.py, and every server a test starts as a subprocess)
# keep the real parameters.
_REAL_ARGON2 = frozenset({"test_signin"})


@pytest.fixture(autouse=True)
def _cheap_password_hashing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.module.__name__.rsplit(".", 1)[-1] in _REAL_ARGON2:
        return
    from argon2 import PasswordHasher

    from states.services import signin_checks

    monkeypatch.setattr(signin_checks, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    monkeypatch.setattr(signin_checks, "_DUMMY", [])
