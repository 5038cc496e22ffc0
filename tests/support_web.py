"""Signed-in web clients for tests: a real account, a real password (Argon2id), a real session
cookie, FastAPI's TestClient on the real application. One place for what each web test file used
to repeat."""

from __future__ import annotations

import re
import warnings
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from models.accounts import User
from states.clock import SystemClock
from states.principal import Principal
from states.services import signin
from tests import support_accounts
from web.app import create_app

with warnings.catch_warnings():  # starlette asks for httpx2 on import; httpx 0.28 works the same here
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

PASSWORD = "quilted marmot evening drizzle 83"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def client_for(db_url: str, token: str | None = None) -> TestClient:
    """A TestClient on the application, with a session cookie when ``token`` is given."""
    client = TestClient(create_app(db_url), base_url="http://testserver")
    if token is not None:
        client.cookies.set("peerwatch_session", token)
    return client


def sign_in_as(db_url: str, db: Engine, principal: Principal) -> TestClient:
    """A client signed in as an existing account (its password set here)."""
    with Session(db, expire_on_commit=False) as s:
        signin.set_password(s, principal, SystemClock(), None, PASSWORD)
        email = s.get(User, principal.user_id).email  # type: ignore[union-attr]
        s.commit()
    assert email is not None
    done = signin.sign_in(db, email, PASSWORD, "127.0.0.1", SystemClock())
    return client_for(db_url, done.token)


def signed_in(db_url: str, db: Engine, name: str, roles: tuple[str, ...], **scope: Any) -> tuple[TestClient, Principal]:
    """A TestClient signed in (a real session cookie) as a new account holding ``roles``
    (``scope=``, ``scope_id=`` as ``tests.support_accounts.account`` takes them)."""
    principal = support_accounts.account(db, name, roles, **scope)
    return sign_in_as(db_url, db, principal), principal


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)
