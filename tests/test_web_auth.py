"""Signing in and out of the web application (issue 15), through FastAPI's TestClient on a real
database with real accounts, passwords and sessions: the cookie's flags, the return to the page
asked for (never to another site), a wrong password, signing out (audited; the old cookie is
dead), an idle or expired session sent back to sign in, and forms without their CSRF token
refused with nothing changed."""

from __future__ import annotations

import re
import warnings
from datetime import timedelta
from typing import Any

import pytest
from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import AuditEvent
from models.web import WebSession
from states.clock import SystemClock
from states.principal import Principal
from states.roles import ADMINISTRATOR, NETWORK_MANAGER
from states.services import signin
from tests import support_accounts
from web.app import create_app
from web.deps import SESSION_COOKIE, ApiMe, Me, Settings, form
from web.render import page

with warnings.catch_warnings():  # starlette asks for httpx2 on import; httpx 0.28 works the same here
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

PASSWORD = "lantern orchard pebble 4417"
EMAIL = "nina.manager@example.nhs.uk"


def client_for(db_url: str, settings: Settings | None = None) -> TestClient:
    """The app, plus three probes a page would be: a signed-in GET, a CSRF-checked POST, an API GET."""
    app = create_app(db_url, settings or Settings())

    def probe(request: Request, me: Me) -> HTMLResponse:
        return page(request, "error.html", me, heading="Signed in", reason=f"signed in as {me.name}")

    async def probe_post(request: Request, me: Me) -> JSONResponse:
        return JSONResponse(await form(request, me))

    def api_probe(me: ApiMe) -> dict[str, Any]:
        return {"name": me.name}

    app.add_api_route("/probe", probe, methods=["GET"])
    app.add_api_route("/probe", probe_post, methods=["POST"])
    app.add_api_route("/api/v1/probe", api_probe, methods=["GET"])
    return TestClient(app, base_url="http://testserver", raise_server_exceptions=False)


@pytest.fixture
def nina(db: Engine) -> Principal:
    """A network manager with a password, and an administrator who set it."""
    admin = support_accounts.account(db, "Ada Admin", (ADMINISTRATOR,))
    nm = support_accounts.account(db, "Nina Manager", (NETWORK_MANAGER,), email=EMAIL)
    with Session(db) as s:
        signin.set_password(s, admin, SystemClock(), nm.user_id, PASSWORD)
        s.commit()
    return nm


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(client: TestClient, password: str = PASSWORD, next_path: str = "/probe") -> Any:
    form_page = client.get("/sign-in", params={"next": next_path})
    assert form_page.status_code == 200
    data = {"email": EMAIL, "password": password, "csrf_token": csrf_of(form_page.text), "next": next_path}
    return client.post("/sign-in", data=data, follow_redirects=False)


def set_cookie_headers(response: Any, name: str) -> list[str]:
    return [h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")]


def sessions(db: Engine) -> list[WebSession]:
    with Session(db) as s:
        return list(s.exec(select(WebSession)).all())


def audit_actions(db: Engine, user_id: int) -> list[str]:
    with Session(db) as s:
        rows = s.exec(
            select(AuditEvent)
            .where(AuditEvent.kind == "account", AuditEvent.item_id == user_id)
            .order_by(AuditEvent.id)
        ).all()
        return [r.trigger for r in rows]


def test_signing_in_sets_an_httponly_lax_cookie_and_returns_to_the_page_asked_for(db_url: str, nina: Principal) -> None:
    client = client_for(db_url)
    r = sign_in(client)
    assert r.status_code == 303 and r.headers["location"] == "/probe"
    (cookie,) = set_cookie_headers(r, SESSION_COOKIE)
    flags = [f.strip().lower() for f in cookie.split(";")]
    assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
    assert "secure" not in flags  # not behind TLS by default
    assert not any(f.startswith(("max-age", "expires")) for f in flags)  # ends with the browser too
    assert "Nina Manager" not in cookie  # an opaque token, nothing else
    r = client.get("/probe", follow_redirects=False)
    assert r.status_code == 200 and "signed in as Nina Manager" in r.text
    r = client.get("/sign-in", params={"next": "/probe"}, follow_redirects=False)  # already signed in: go on
    assert r.status_code == 303 and r.headers["location"] == "/probe"
    assert "signed_in" in audit_actions(client.app.state.engine, nina.user_id)  # type: ignore[attr-defined]


def test_behind_tls_the_cookie_is_secure(db_url: str, nina: Principal) -> None:
    client = client_for(db_url, Settings(secure_cookies=True))
    client.base_url = client.base_url.copy_with(scheme="https")
    r = sign_in(client)
    (cookie,) = set_cookie_headers(r, SESSION_COOKIE)
    assert "secure" in [f.strip().lower() for f in cookie.split(";")]
    assert r.headers["strict-transport-security"].startswith("max-age=")


def test_a_wrong_password_shows_the_error_and_makes_no_session(db_url: str, db: Engine, nina: Principal) -> None:
    client = client_for(db_url)
    r = sign_in(client, password="not the password at all")
    assert r.status_code == 401
    assert "nhsuk-error-summary" in r.text and "Email or password not recognised" in r.text
    assert set_cookie_headers(r, SESSION_COOKIE) == [] and sessions(db) == []
    assert client.get("/probe", follow_redirects=False).status_code == 303
    assert "signed_in" not in audit_actions(db, nina.user_id)


def test_signing_out_ends_the_session_and_is_audited(db_url: str, db: Engine, nina: Principal) -> None:
    client = client_for(db_url)
    sign_in(client)
    token = client.cookies.get(SESSION_COOKIE)
    html = client.get("/probe").text
    assert 'action="/sign-out"' in html
    r = client.post("/sign-out", data={"csrf_token": csrf_of(html)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/sign-in")
    assert set_cookie_headers(r, SESSION_COOKIE) and "max-age=0" in set_cookie_headers(r, SESSION_COOKIE)[0].lower()
    (row,) = sessions(db)
    assert row.ended_at is not None and row.ended_reason == "signed_out"
    assert audit_actions(db, nina.user_id)[-1] == "signed_out"
    stale = client_for(db_url)
    stale.cookies.set(SESSION_COOKIE, token or "")
    r = stale.get("/probe", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/sign-in?next=/probe"


@pytest.mark.parametrize("how", ["idle", "absolute"])
def test_an_ended_session_is_sent_back_to_sign_in(db_url: str, db: Engine, nina: Principal, how: str) -> None:
    client = client_for(db_url)
    sign_in(client)
    assert client.get("/probe", follow_redirects=False).status_code == 200
    with Session(db) as s:
        (row,) = s.exec(select(WebSession)).all()
        if how == "idle":  # unused for 31 minutes (the default idle timeout is 30)
            row.last_seen_at = row.last_seen_at - timedelta(minutes=31)
        else:  # past its absolute lifetime, though used a moment ago
            row.created_at = row.created_at - timedelta(hours=13)
            row.expires_at = row.created_at + timedelta(hours=12)
        s.add(row)
        s.commit()
    r = client.get("/probe?tab=history", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/sign-in?next=/probe%3Ftab%3Dhistory"
    r = client.post("/probe", data={"x": "1"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/sign-in")


def test_without_a_session_pages_redirect_and_the_api_answers_401(db_url: str) -> None:
    client = client_for(db_url)
    r = client.get("/probe", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/sign-in?next=/probe"
    client.cookies.set(SESSION_COOKIE, "made-up-token")
    assert client.get("/probe", follow_redirects=False).status_code == 303
    r = client.get("/api/v1/probe")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert list(r.json()) == ["error"] and "\n" not in r.json()["error"]
    r = client.get("/api/v1/probe", headers={"Authorization": "Bearer pw_not-a-real-token"})
    assert r.status_code == 401 and "unknown or revoked" in r.json()["error"]


@pytest.mark.parametrize("given", [None, "", "wrong-token"])
def test_a_post_without_the_right_csrf_token_is_refused_and_changes_nothing(
    db_url: str, db: Engine, nina: Principal, given: str | None
) -> None:
    client = client_for(db_url)
    sign_in(client)
    data = {} if given is None else {"csrf_token": given}
    r = client.post("/sign-out", data=data, follow_redirects=False)
    assert r.status_code == 403 and "the form has expired or did not come from peerwatch" in r.text
    (row,) = sessions(db)
    assert row.ended_at is None and "signed_out" not in audit_actions(db, nina.user_id)
    assert client.get("/probe", follow_redirects=False).status_code == 200  # still signed in
    r = client.post("/probe", data={**data, "note": "x"}, follow_redirects=False)
    assert r.status_code == 403
    right = csrf_of(client.get("/probe").text)
    r = client.post("/probe", data={"csrf_token": right, "note": "x"}, follow_redirects=False)
    assert r.status_code == 200 and r.json() == {"note": "x"}


def test_the_sign_in_form_needs_its_own_csrf_token(db_url: str, db: Engine, nina: Principal) -> None:
    client = client_for(db_url)
    r = client.post("/sign-in", data={"email": EMAIL, "password": PASSWORD, "csrf_token": "forged"})
    assert r.status_code == 403 and sessions(db) == []
    other = client_for(db_url)  # a token from another browser's form does not fit this one's cookie
    token = csrf_of(other.get("/sign-in").text)
    r = client.post("/sign-in", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 403 and sessions(db) == []


@pytest.mark.parametrize(
    "next_path", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "evil"]
)
def test_sign_in_never_returns_to_another_site(db_url: str, nina: Principal, next_path: str) -> None:
    client = client_for(db_url)
    form_page = client.get("/sign-in", params={"next": next_path})
    assert "evil.example" not in form_page.text and "javascript:" not in form_page.text
    data = {"email": EMAIL, "password": PASSWORD, "csrf_token": csrf_of(form_page.text), "next": next_path}
    r = client.post("/sign-in", data=data, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"


def signed_in_as(db_url: str, db: Engine, email: str, password: str) -> TestClient:
    client = client_for(db_url)
    done = signin.sign_in(db, email, password, "127.0.0.1", SystemClock())
    client.cookies.set(SESSION_COOKIE, done.token)
    return client


def test_the_header_names_the_person_and_shows_admin_only_to_administrators(
    db_url: str, db: Engine, nina: Principal
) -> None:
    client = signed_in_as(db_url, db, EMAIL, PASSWORD)
    html = client.get("/probe").text
    assert "Nina Manager" in html and 'href="/outbox"' in html and 'href="/admin/users"' not in html
    assert "Training database" not in html
    missing = client.get("/no-such-page")  # an error page keeps the header of the person signed in
    assert missing.status_code == 404 and "Nina Manager" in missing.text and 'href="/outbox"' in missing.text
    assert "Nina Manager" not in client_for(db_url).get("/no-such-page").text
    admin = support_accounts.account(db, "Ada Admin", ())
    with Session(db) as s:
        signin.set_password(s, admin, SystemClock(), None, "copper violin meadow 2290")
        s.commit()
    html = signed_in_as(db_url, db, "adaadmin@example.nhs.uk", "copper violin meadow 2290").get("/probe").text
    assert "Ada Admin" in html and 'href="/admin/users"' in html


def test_every_page_of_a_training_database_says_so(db_url: str, db: Engine, training: None, nina: Principal) -> None:
    client = signed_in_as(db_url, db, EMAIL, PASSWORD)
    html = client.get("/probe").text
    assert "Training database: simulated dates and accounts; letters are never sent" in html
    signed_out = client_for(db_url)
    for path in ("/sign-in", "/no-such-page"):
        assert "Training database:" in signed_out.get(path).text, path
