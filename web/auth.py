"""Signing in and out: email and password, or single sign-on by OpenID Connect.

- ``GET /sign-in`` shows the form; its CSRF token is a double-submit cookie
  (``peerwatch_signin``, HttpOnly) made before there is a session; ``POST /sign-in`` checks it,
  then ``states.services.signin.sign_in`` (throttled and audited there) makes the session. The
  session cookie holds an opaque random token (the row keeps its hash), and a new token is made
  at every sign-in.
- ``POST /sign-out``: the session's CSRF token, then ``signin.sign_out`` (audited).
- ``GET /sign-in/oidc``: to the provider (authorization code flow with PKCE S256); the
  state, nonce, code verifier and where to return are kept for ten minutes in an HttpOnly
  cookie scoped to /sign-in/oidc. ``GET /sign-in/oidc/callback``: the code is exchanged
  (authlib's requests client, in a worker thread), the ID token checked with the provider's
  keys (joserfc: signature, iss, aud, exp, nonce), then ``signin.sign_in_oidc`` maps the
  identity to an account or refuses it (audited there).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from states.errors import InvalidInput, SignInRefused
from states.services import signin
from web import oidc
from web.deps import (
    CSRF_FIELD,
    CSRF_REFUSED,
    SESSION_COOKIE,
    Me,
    Settings,
    clock_of,
    csrf_matches,
    engine_of,
    form,
    posted,
    safe_next,
    settings_of,
)
from web.render import page, redirect

log = logging.getLogger("peerwatch.web")
router = APIRouter(include_in_schema=False)

SIGNIN_CSRF_COOKIE = "peerwatch_signin"
OIDC_COOKIE = "peerwatch_oidc"
OIDC_PATH = "/sign-in/oidc"
OIDC_TTL = 600  # seconds a sign-on at the provider may take
MAX_FIELD = 1024


def client_address(request: Request) -> str | None:
    """The client's address (uvicorn's --proxy-headers makes it the real one behind a proxy)."""
    return request.client.host if request.client else None


def _cookie(response: Response, settings: Settings, name: str, value: str, *, path: str = "/", max_age: int | None = None) -> None:  # fmt: skip
    response.set_cookie(name, value, max_age=max_age, path=path, secure=settings.secure_cookies, httponly=True, samesite="lax")  # fmt: skip


def _forget(response: Response, settings: Settings, name: str, path: str = "/") -> None:
    response.delete_cookie(name, path=path, secure=settings.secure_cookies, httponly=True, samesite="lax")


def start_session(response: Response, settings: Settings, done: signin.SignedIn) -> Response:
    """Give the browser its new session's cookie (no Max-Age: it ends with the browser too)."""
    _cookie(response, settings, SESSION_COOKIE, done.token)
    _forget(response, settings, SIGNIN_CSRF_COOKIE)
    return response


def _sign_in_page(
    request: Request, *, next_path: str, errors: list[dict[str, str]] | None = None, email: str = "",
    status_code: int = 200, notice: str = "",
) -> HTMLResponse:  # fmt: skip
    """The sign-in form with a fresh double-submit CSRF token (cookie and hidden field)."""
    settings = settings_of(request)
    errors = [{**e, "text": e["text"][:1].upper() + e["text"][1:]} for e in errors or []]  # as a sentence
    token = request.cookies.get(SIGNIN_CSRF_COOKIE) or ""
    if len(token) < 32 or len(token) > 100:
        token = secrets.token_urlsafe(32)
    response = page(
        request, "sign_in.html", None, status_code=status_code, csrf_token=token, next=next_path,
        errors=errors, email=email, oidc=settings.oidc_enabled, notice=notice,
    )  # fmt: skip
    _cookie(response, settings, SIGNIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.get("/sign-in")
def sign_in_form(request: Request, next: str = "/", out: str = "") -> Response:
    """The sign-in form; someone already signed in goes straight on to ``next``."""
    if request.cookies.get(SESSION_COOKIE):
        with Session(engine_of(request)) as s:
            if signin.session_principal(s, request.cookies[SESSION_COOKIE], clock_of(request)) is not None:
                return redirect(safe_next(next))
    notice = "You have signed out." if out else ""
    return _sign_in_page(request, next_path=safe_next(next), notice=notice)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    settings = settings_of(request)
    data = await posted(request)
    fields = {k: v for k, v in data.items() if isinstance(v, str)}
    next_path = safe_next(fields.get("next"))
    if not csrf_matches(request.cookies.get(SIGNIN_CSRF_COOKIE, ""), fields.get(CSRF_FIELD)):
        return _sign_in_page(request, next_path=next_path, errors=[{"text": CSRF_REFUSED, "href": "#email"}], status_code=403)  # fmt: skip
    email = fields.get("email", "").strip()[:MAX_FIELD]
    password = fields.get("password", "")
    errors = []
    if not email:
        errors.append({"text": "Enter your email address", "href": "#email"})
    if not password:
        errors.append({"text": "Enter your password", "href": "#password"})
    if errors:
        return _sign_in_page(request, next_path=next_path, errors=errors, email=email, status_code=422)
    try:
        done = await run_in_threadpool(
            signin.sign_in, engine_of(request), email, password, client_address(request), clock_of(request)
        )
    except SignInRefused as e:
        return _sign_in_page(request, next_path=next_path, errors=[{"text": str(e), "href": "#email"}], email=email, status_code=401)  # fmt: skip
    return start_session(redirect(next_path), settings, done)


@router.post("/sign-out")
async def sign_out(request: Request, me: Me) -> Response:
    await form(request, me)
    token = request.cookies.get(SESSION_COOKIE, "")
    await run_in_threadpool(signin.sign_out, engine_of(request), token, clock_of(request))
    response = redirect("/sign-in?out=1")
    _forget(response, settings_of(request), SESSION_COOKIE)
    return response


# ---------------------------------------------------------------- single sign-on


def _pack(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def _unpack(value: str) -> dict[str, Any] | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(value.encode()))
    except (ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def _refused(request: Request, reason: str, status_code: int = 401) -> HTMLResponse:
    response = _sign_in_page(request, next_path="/", errors=[{"text": reason, "href": "#email"}], status_code=status_code)  # fmt: skip
    _forget(response, settings_of(request), OIDC_COOKIE, OIDC_PATH)
    return response


def redirect_url(request: Request, settings: Settings) -> str:
    return settings.oidc_redirect_url or str(request.url_for("oidc_callback"))


@router.get(OIDC_PATH)
async def oidc_start(request: Request, next: str = "/") -> Response:
    settings = settings_of(request)
    if not settings.oidc_enabled:
        return _refused(request, "single sign-on is not set up on this server: sign in with your email and password", 404)  # fmt: skip
    try:
        url, secret = await run_in_threadpool(oidc.authorization_url, request.app, settings, redirect_url(request, settings))  # fmt: skip
    except oidc.ProviderError as e:
        log.warning("single sign-on: %s", e)
        return _refused(request, "the single sign-on service could not be reached: try again, or sign in with your password", 502)  # fmt: skip
    secret["next"] = safe_next(next)
    secret["at"] = int(time.time())
    response = redirect(url)
    _cookie(response, settings, OIDC_COOKIE, _pack(secret), path=OIDC_PATH, max_age=OIDC_TTL)
    return response


@router.get(OIDC_PATH + "/callback", name="oidc_callback")
async def oidc_callback(request: Request) -> Response:
    settings = settings_of(request)
    if not settings.oidc_enabled:
        return _refused(request, "single sign-on is not set up on this server", 404)
    params = request.query_params
    kept = _unpack(request.cookies.get(OIDC_COOKIE, ""))
    at = kept.get("at") if kept is not None else None
    if not isinstance(at, int | float) or at + OIDC_TTL < time.time():  # absent, altered or too old
        return _refused(request, "the single sign-on took too long or did not start here: try again", 400)
    if not csrf_matches(str(kept.get("state", "")), params.get("state")):
        return _refused(request, "the single sign-on reply did not match this browser's request: try again", 400)
    if params.get("error"):
        return _refused(request, f"the single sign-on service refused: {params.get('error')}", 401)
    code = params.get("code", "")
    if not code or len(code) > 2048:
        return _refused(request, "the single sign-on reply had no authorisation code: try again", 400)
    try:
        identity = await run_in_threadpool(
            oidc.identity_from_code, request.app, settings, redirect_url(request, settings), code, kept
        )
    except oidc.ProviderError as e:
        log.warning("single sign-on: %s", e)
        return _refused(request, f"single sign-on failed: {e}", 401)
    try:
        done = await run_in_threadpool(
            lambda: signin.sign_in_oidc(
                engine_of(request), issuer=identity.issuer, subject=identity.subject, email=identity.email,
                email_verified=identity.email_verified, address=client_address(request), clock=clock_of(request),
            )
        )  # fmt: skip
    except (SignInRefused, InvalidInput) as e:
        return _refused(request, str(e), 403)
    response = start_session(redirect(safe_next(str(kept.get("next", "/")))), settings, done)
    _forget(response, settings, OIDC_COOKIE, OIDC_PATH)
    return response
