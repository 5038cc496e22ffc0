"""Single sign-on by OpenID Connect, the provider's side of it: discovery, the authorization
URL (code flow, PKCE S256, state and nonce) and the code's exchange for a checked identity.

Synchronous (authlib's requests client, which raises no deprecation warnings; joserfc checks
the ID token): web/auth.py runs these in a worker thread. The discovery document and the
provider's keys are kept for an hour; an ID token signed by a key not yet seen fetches the
keys once more (the provider rotated them).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from web.deps import Settings

TIMEOUT = 10.0
KEEP = 3600.0
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
_lock = threading.Lock()


class ProviderError(Exception):
    """The provider could not be reached, or its reply was not acceptable (one line)."""


@dataclass(frozen=True)
class Identity:
    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


@dataclass
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    fetched: float
    keys: dict[str, Any] | None = None


def _get_json(url: str) -> dict[str, Any]:
    try:
        reply = requests.get(url, timeout=TIMEOUT, headers={"Accept": "application/json"})
    except requests.RequestException as e:
        raise ProviderError(f"could not reach {url}: {type(e).__name__}") from None
    if reply.status_code != 200:
        raise ProviderError(f"{url} answered {reply.status_code}")
    try:
        data = reply.json()
    except ValueError:
        raise ProviderError(f"{url} did not answer JSON") from None
    if not isinstance(data, dict):
        raise ProviderError(f"{url} did not answer a JSON object")
    return data


def _same_issuer(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def provider(app: Any, settings: Settings, *, refresh: bool = False) -> Provider:
    """The provider's discovery document (``<issuer>/.well-known/openid-configuration``), cached."""
    assert settings.oidc_issuer
    with _lock:
        found: Provider | None = getattr(app.state, "oidc_provider", None)
        if found is not None and not refresh and time.monotonic() - found.fetched < KEEP:
            return found
    doc = _get_json(settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration")
    issuer = str(doc.get("issuer", ""))
    if not _same_issuer(issuer, settings.oidc_issuer):
        raise ProviderError(f"the provider says its issuer is {issuer!r}, not {settings.oidc_issuer!r}")
    try:
        made = Provider(
            issuer=issuer,
            authorization_endpoint=str(doc["authorization_endpoint"]),
            token_endpoint=str(doc["token_endpoint"]),
            jwks_uri=str(doc["jwks_uri"]),
            fetched=time.monotonic(),
        )
    except KeyError as e:
        raise ProviderError(f"the provider's discovery document has no {e.args[0]}") from None
    with _lock:
        app.state.oidc_provider = made
    return made


def _client(settings: Settings, redirect_uri: str) -> OAuth2Session:
    return OAuth2Session(
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        scope=settings.oidc_scopes,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic" if settings.oidc_client_secret else "none",
    )


def authorization_url(app: Any, settings: Settings, redirect_uri: str) -> tuple[str, dict[str, Any]]:
    """Where to send the browser, and what to keep until it comes back (state, nonce, verifier)."""
    found = provider(app, settings)
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    with _client(settings, redirect_uri) as client:
        url, _ = client.create_authorization_url(
            found.authorization_endpoint, state=state, nonce=nonce, code_verifier=verifier
        )
    return url, {"state": state, "nonce": nonce, "verifier": verifier}


def _keys(app: Any, settings: Settings, found: Provider, refresh: bool) -> KeySet:
    if found.keys is None or refresh:
        found.keys = _get_json(found.jwks_uri)
    try:
        return KeySet.import_key_set(found.keys)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as e:
        raise ProviderError(f"the provider's keys could not be read: {type(e).__name__}") from None


def check_id_token(app: Any, settings: Settings, id_token: str, nonce: str) -> dict[str, Any]:
    """The ID token's claims once its signature, iss, aud, exp and nonce are right."""
    found = provider(app, settings)
    token = None
    for refresh in (False, True):
        try:
            token = jwt.decode(id_token, _keys(app, settings, found, refresh), algorithms=ALGORITHMS)
            break
        except (JoseError, ValueError) as e:
            if refresh:
                raise ProviderError(f"the ID token's signature was not accepted ({type(e).__name__})") from None
    assert token is not None
    registry = jwt.JWTClaimsRegistry(
        leeway=60,
        iss={"essential": True, "value": found.issuer},
        aud={"essential": True, "value": settings.oidc_client_id or ""},
        exp={"essential": True},
        sub={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(token.claims)
    except JoseError as e:
        raise ProviderError(f"the ID token was not accepted: {e.error} {e.description or ''}".strip()) from None
    claims = dict(token.claims)
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != settings.oidc_client_id:
        raise ProviderError("the ID token was issued to another client (azp)")
    return claims


def identity_from_code(app: Any, settings: Settings, redirect_uri: str, code: str, kept: dict[str, Any]) -> Identity:
    """Exchange the authorisation code (with the PKCE verifier) and check the ID token."""
    found = provider(app, settings)
    try:
        with _client(settings, redirect_uri) as client:
            tokens = client.fetch_token(
                found.token_endpoint, code=code, code_verifier=str(kept.get("verifier", "")), timeout=TIMEOUT
            )
    except Exception as e:  # authlib raises OAuthError, requests its own: either way one line
        raise ProviderError(f"the code could not be exchanged ({type(e).__name__}: {str(e)[:120]})") from None
    id_token = tokens.get("id_token") if isinstance(tokens, dict) else None
    if not isinstance(id_token, str) or not id_token:
        raise ProviderError("the provider returned no ID token")
    claims = check_id_token(app, settings, id_token, str(kept.get("nonce", "")))
    email = claims.get("email")
    verified = claims.get("email_verified")
    return Identity(
        issuer=found.issuer,
        subject=str(claims["sub"]),
        email=email if isinstance(email, str) else None,
        email_verified=verified is True or verified == "true",
        name=claims.get("name") if isinstance(claims.get("name"), str) else None,
    )
