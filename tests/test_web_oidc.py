"""Single sign-on by OpenID Connect (issue 15) against a real provider: oidc-provider-mock,
started on 127.0.0.1 in its own process (its deprecation warnings stay there). The browser's
part is played by TestClient (the app) and httpx (the provider's authorisation form, where the
subject is chosen); the app itself discovers the provider, exchanges the code (PKCE) and checks
the ID token's signature, issuer, audience, expiry and nonce over real HTTP.

A linked identity signs in; an identity whose *verified* email is an account's is linked to it
(audited); an unknown identity, or one whose email is not verified, is refused, audited, and
gets no session; a reply that does not match this browser's request is refused."""

from __future__ import annotations

import base64
import json
import time
import warnings
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models import AuditEvent
from models.accounts import User
from models.tables import RefusedAttempt
from models.web import WebSession
from states.clock import SystemClock
from states.principal import Principal
from states.roles import ADMINISTRATOR, NETWORK_MANAGER
from states.services import signin
from tests import support_accounts
from tests.support_browser import Server, start_oidc_provider
from web import oidc
from web.app import create_app
from web.deps import SESSION_COOKIE, Settings

with warnings.catch_warnings():  # starlette asks for httpx2 on import; httpx 0.28 works the same here
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

CLIENT_ID = "peerwatch-test"
USERS = [
    {"sub": "olive-linked", "email": "olive@example.nhs.uk", "email_verified": True, "name": "Olive"},
    {"sub": "vera-new", "email": "vera@example.nhs.uk", "email_verified": True},
    {"sub": "una-unverified", "email": "una@example.nhs.uk", "email_verified": False},
    {"sub": "stranger", "email": "stranger@example.org", "email_verified": True},
]


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_oidc_provider(tmp_path_factory.mktemp("oidc"), USERS)
    yield server
    server.stop()


@pytest.fixture
def people(db: Engine, provider: Server) -> dict[str, Principal]:
    """Olive (linked to her identity by an administrator), Vera and Una (not linked yet)."""
    admin = support_accounts.account(db, "Ada Admin", (ADMINISTRATOR,))
    made = {
        name: support_accounts.account(db, name.title(), (NETWORK_MANAGER,), email=f"{name}@example.nhs.uk")
        for name in ("olive", "vera", "una")
    }
    with Session(db) as s:
        signin.link_oidc(s, admin, SystemClock(), made["olive"].user_id, provider.base, "olive-linked")
        s.commit()
    return made


def app_client(db_url: str, provider: Server) -> TestClient:
    settings = Settings(oidc_issuer=provider.base, oidc_client_id=CLIENT_ID, oidc_client_secret="not-so-secret")
    return TestClient(create_app(db_url, settings), base_url="http://testserver")


def through_provider(client: TestClient, subject: str, next_path: str = "/outbox") -> Any:
    """Start single sign-on, choose ``subject`` at the provider, come back: the app's last answer."""
    r = client.get("/sign-in/oidc", params={"next": next_path}, follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    to = urlsplit(r.headers["location"])
    query = parse_qs(to.query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["state"][0] and query["nonce"][0] and query["client_id"] == [CLIENT_ID]
    chosen = httpx.post(r.headers["location"], data={"sub": subject}, follow_redirects=False, timeout=30)
    assert chosen.status_code == 302, chosen.text[:300]
    back = urlsplit(chosen.headers["location"])
    assert back.path == "/sign-in/oidc/callback"
    return client.get(f"{back.path}?{back.query}", follow_redirects=False)


def web_sessions(db: Engine) -> list[WebSession]:
    with Session(db) as s:
        return list(s.exec(select(WebSession)).all())


def actions(db: Engine, user_id: int) -> list[str]:
    with Session(db) as s:
        q = select(AuditEvent).where(AuditEvent.kind == "account", AuditEvent.item_id == user_id)
        return [e.trigger for e in s.exec(q.order_by(AuditEvent.id)).all()]


def refusals(db: Engine) -> list[RefusedAttempt]:
    with Session(db) as s:
        return list(s.exec(select(RefusedAttempt).where(RefusedAttempt.trigger == "sign_in")).all())


def test_the_sign_in_page_offers_single_sign_on_only_when_it_is_set_up(
    db_url: str, db: Engine, provider: Server
) -> None:
    assert "Sign in with single sign-on" in app_client(db_url, provider).get("/sign-in").text
    plain = TestClient(create_app(db_url, Settings()), base_url="http://testserver")
    assert "single sign-on" not in plain.get("/sign-in").text
    assert plain.get("/sign-in/oidc", follow_redirects=False).status_code == 404


def test_a_linked_identity_signs_in_and_returns_to_the_page_asked_for(
    db_url: str, db: Engine, provider: Server, people: dict[str, Principal]
) -> None:
    client = app_client(db_url, provider)
    r = through_provider(client, "olive-linked")
    assert r.status_code == 303 and r.headers["location"] == "/outbox"
    cookie = [h for h in r.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "=")]
    assert cookie and "httponly" in cookie[0].lower() and "samesite=lax" in cookie[0].lower()
    (row,) = web_sessions(db)
    assert row.user_id == people["olive"].user_id and row.via == "oidc"
    assert actions(db, people["olive"].user_id)[-1] == "signed_in"
    page = client.get("/sign-in/oidc/callback", follow_redirects=False)  # the one-time state is gone
    assert page.status_code == 400


def test_a_verified_email_links_the_identity_to_its_account(
    db_url: str, db: Engine, provider: Server, people: dict[str, Principal]
) -> None:
    r = through_provider(app_client(db_url, provider), "vera-new", next_path="/")
    assert r.status_code == 303 and r.headers["location"] == "/"
    with Session(db) as s:
        vera = s.get(User, people["vera"].user_id)
        assert vera is not None and (vera.oidc_issuer, vera.oidc_subject) == (provider.base, "vera-new")
    assert actions(db, people["vera"].user_id)[-2:] == ["sso_linked", "signed_in"]


@pytest.mark.parametrize("subject", ["stranger", "una-unverified", "someone-the-provider-just-made"])
def test_an_unknown_or_unverified_identity_gets_no_access_and_is_audited(
    db_url: str, db: Engine, provider: Server, people: dict[str, Principal], subject: str
) -> None:
    client = app_client(db_url, provider)
    r = through_provider(client, subject)
    assert (
        r.status_code == 403 and "No peerwatch account for this identity" in r.text and "nhsuk-error-summary" in r.text
    )
    assert not [h for h in r.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "=")]
    assert web_sessions(db) == []
    (refused,) = refusals(db)
    assert refused.data["params"]["subject"] == subject and refused.data["params"]["method"] == "oidc"
    with Session(db) as s:
        una = s.get(User, people["una"].user_id)
        assert una is not None and una.oidc_subject is None  # an unverified email links nothing
    assert client.get("/outbox", follow_redirects=False).status_code == 303


def test_a_reply_that_does_not_match_this_browsers_request_is_refused(
    db_url: str, db: Engine, provider: Server, people: dict[str, Principal]
) -> None:
    victim, attacker = app_client(db_url, provider), app_client(db_url, provider)
    r = attacker.get("/sign-in/oidc", follow_redirects=False)
    chosen = httpx.post(r.headers["location"], data={"sub": "olive-linked"}, follow_redirects=False, timeout=30)
    back = urlsplit(chosen.headers["location"])
    victim.get("/sign-in/oidc", follow_redirects=False)  # the victim started a sign-on of their own
    answer = victim.get(f"{back.path}?{back.query}", follow_redirects=False)  # login CSRF: the attacker's code
    assert answer.status_code == 400 and "did not match" in answer.text
    fresh = app_client(db_url, provider)  # no sign-on started at all
    assert fresh.get(f"{back.path}?{back.query}", follow_redirects=False).status_code == 400
    for altered in ({"at": "x", "state": "s"}, {"at": None}, {"at": [1]}, ["not", "a", "dict"]):  # never a 500
        forged = base64.urlsafe_b64encode(json.dumps(altered).encode()).decode()
        fresh.cookies.set("peerwatch_oidc", forged)
        assert fresh.get(f"{back.path}?{back.query}", follow_redirects=False).status_code == 400
    assert web_sessions(db) == []


# ---------------------------------------------------------------- the ID token's checks


ISSUER = "https://login.example.nhs.uk"


@pytest.fixture(scope="module")
def signing_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)


def checked(
    signing_key: RSAKey, claims: dict[str, Any], monkeypatch: pytest.MonkeyPatch, key: RSAKey | None = None
) -> dict[str, Any]:
    """``web.oidc.check_id_token`` on a token signed by ``key`` (the provider's by default),
    against a provider whose discovery is known; its keys "fetched" from the published set."""
    published = {"keys": [signing_key.as_dict(private=False)]}
    monkeypatch.setattr(oidc, "_get_json", lambda url: published if url == ISSUER + "/jwks" else {})
    provider = oidc.Provider(ISSUER, ISSUER + "/authorize", ISSUER + "/token", ISSUER + "/jwks", time.monotonic())
    app = SimpleNamespace(state=SimpleNamespace(oidc_provider=provider))
    settings = Settings(oidc_issuer=ISSUER, oidc_client_id=CLIENT_ID)
    signer = key or signing_key
    token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, signer)
    return oidc.check_id_token(app, settings, token, "n-1")


def good_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": ISSUER, "aud": CLIENT_ID, "sub": "s-1", "iat": now, "exp": now + 300}
    claims["nonce"] = "n-1"
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def test_a_good_id_token_is_accepted(signing_key: RSAKey, monkeypatch: pytest.MonkeyPatch) -> None:
    assert checked(signing_key, good_claims(), monkeypatch)["sub"] == "s-1"
    both = good_claims(aud=[CLIENT_ID, "other"], azp=CLIENT_ID)
    assert checked(signing_key, both, monkeypatch)["sub"] == "s-1"


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "https://evil.example"},
        {"aud": "another-client"},
        {"aud": [CLIENT_ID, "other"], "azp": "other"},
        {"exp": 1_000_000},
        {"exp": None},
        {"nonce": "replayed"},
        {"nonce": None},
        {"sub": None},
    ],
)
def test_an_id_token_with_a_wrong_claim_is_refused(
    signing_key: RSAKey, monkeypatch: pytest.MonkeyPatch, changes: dict[str, Any]
) -> None:
    with pytest.raises(oidc.ProviderError, match=r"not accepted|another client"):
        checked(signing_key, good_claims(**changes), monkeypatch)


def test_an_id_token_signed_by_another_key_is_refused(signing_key: RSAKey, monkeypatch: pytest.MonkeyPatch) -> None:
    forger = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
    with pytest.raises(oidc.ProviderError, match="signature"):
        checked(signing_key, good_claims(), monkeypatch, key=forger)
