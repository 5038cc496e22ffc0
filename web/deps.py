"""What a route needs, as FastAPI dependencies: the settings, the database, who is signed in
(``who`` for pages, ``api_who`` for /api/v1) and a form whose CSRF token has been checked.

A page's signature says what it needs::

    @router.get("/outbox")
    def outbox(request: Request, me: Who = Depends(who)) -> HTMLResponse: ...

    @router.post("/outbox/{id}/retry")
    async def retry(request: Request, id: int, me: Who = Depends(who)) -> Response:
        fields = await form(request, me)   # 403 unless csrf_token matches the session's
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlmodel import Session

from states.clock import Clock, SystemClock
from states.errors import InvalidInput, MissingActor
from states.principal import Principal
from states.services import accounts, clocks, signin
from states.uploads import check_size, max_upload_bytes

SESSION_COOKIE = "peerwatch_session"
CSRF_FIELD = "csrf_token"
CSRF_REFUSED = "the form has expired or did not come from peerwatch: go back and try again"


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _number(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r}: expected a whole number") from None
    if number <= 0:
        raise ValueError(f"{name}={value!r}: expected a number above 0")
    return number


@dataclass(frozen=True)
class Settings:
    """The web application's settings (docs/web.md), read from the environment by ``from_env``.

    - ``PEERWATCH_WEB_SECURE_COOKIES`` (false): true behind TLS; the session cookie is then
      ``Secure`` and every response carries Strict-Transport-Security.
    - ``PEERWATCH_WEB_IDLE_MINUTES`` (30): a session unused this long ends.
    - ``PEERWATCH_WEB_SESSION_HOURS`` (12): a session ends this long after sign-in, used or not.
      (These two are applied by ``states.services.signin``, which reads the same variables;
      the fields here show what is in force, they do not override it.)
    - ``PEERWATCH_OIDC_ISSUER``, ``_CLIENT_ID``, ``_CLIENT_SECRET``, ``_REDIRECT_URL``: single
      sign-on by OpenID Connect; without the first three the sign-in page offers passwords only.
    - ``PEERWATCH_WEB_THREADS`` (4): the threads a worker runs pages in at once (anyio's default
      is 40). Pages are CPU work under one interpreter lock: 40 threads fought over it, and a
      worker served fewer pages (the web bench: the item page 47 req/s with 40, 56 with 4, 77
      with 2 on SQLite; 37, 40 and 50 on PostgreSQL). More workers, not threads, use more cores.
    """

    secure_cookies: bool = False
    idle_minutes: int = 30
    session_hours: int = 12
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_redirect_url: str | None = None
    oidc_scopes: str = "openid email profile"
    threads: int = 4

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            secure_cookies=_flag("PEERWATCH_WEB_SECURE_COOKIES", False),
            idle_minutes=_number("PEERWATCH_WEB_IDLE_MINUTES", 30),
            session_hours=_number("PEERWATCH_WEB_SESSION_HOURS", 12),
            oidc_issuer=os.environ.get("PEERWATCH_OIDC_ISSUER") or None,
            oidc_client_id=os.environ.get("PEERWATCH_OIDC_CLIENT_ID") or None,
            oidc_client_secret=os.environ.get("PEERWATCH_OIDC_CLIENT_SECRET") or None,
            oidc_redirect_url=os.environ.get("PEERWATCH_OIDC_REDIRECT_URL") or None,
            threads=_number("PEERWATCH_WEB_THREADS", 4),
        )

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)


@dataclass
class Who:
    """The signed-in person for this request: their principal, the server's clock (a training
    database's simulated date), the session's CSRF token, the session id, and the training mark."""

    principal: Principal
    clock: Clock
    csrf: str
    session_id: int
    training: bool

    @property
    def name(self) -> str:
        return self.principal.name

    @property
    def is_admin(self) -> bool:
        return self.principal.holds("administrator")


class SignInRequired(Exception):
    """No session, or it ended: the page handler answers 303 to /sign-in?next=<path>."""

    def __init__(self, next_path: str, reason: str = "") -> None:
        super().__init__(reason or "sign in to continue")
        self.next_path = next_path
        self.reason = reason


class CsrfRefused(Exception):
    """A state-changing request whose csrf_token is missing or wrong (403)."""


class ApiUnauthorised(Exception):
    """/api/v1 without a valid bearer token (401 with WWW-Authenticate)."""


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def engine_of(request: Request) -> Engine:
    """The application's database engine (made once by create_app)."""
    engine: Engine = request.app.state.engine
    return engine


def safe_next(value: str | None, default: str = "/") -> str:
    """``value`` if it is a path on this site (``/...``, not ``//host`` nor ``/\\host``), else ``default``."""
    if not value or not value.startswith("/") or value.startswith("//") or value.startswith("/\\"):
        return default
    if any(ord(c) < 32 or c == "\\" for c in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def _here(request: Request) -> str:
    path = request.url.path
    if request.url.query:
        path += "?" + request.url.query
    return safe_next(path)


def sign_in_url(next_path: str) -> str:
    if next_path in ("", "/"):
        return "/sign-in"
    return "/sign-in?next=" + quote(next_path, safe="/")


def clock_of(request: Request) -> Clock:
    """The clock sessions run on (the system clock; a test may put a FixedClock in app.state.clock)."""
    clock: Clock = request.app.state.clock
    return clock


def action_clock(session: Session, training: bool) -> Clock:
    """The clock a person's action runs on: the server's (states/services/clocks.py; a training
    database stands at its own day, which ``peerwatch installation training-day`` moves)."""
    return clocks.action_clock(session, None)


def who(request: Request) -> Who:
    """The signed-in person (a FastAPI dependency for pages): no session, or an ended one, is a
    303 to /sign-in?next=<this page> (after a POST, to /sign-in?next=/: the form is not kept)."""
    token = request.cookies.get(SESSION_COOKIE, "")
    next_path = _here(request) if request.method in ("GET", "HEAD") else "/"
    if not token:
        raise SignInRequired(next_path)
    with Session(engine_of(request), expire_on_commit=False) as s:
        found = signin.session_principal(s, token, clock_of(request))
        if found is None:
            raise SignInRequired(next_path, "your session has ended: sign in again")
        principal, info = found
        training = accounts.is_training(s)
        clock = action_clock(s, training)
    return Who(principal=principal, clock=clock, csrf=info.csrf, session_id=info.id, training=training)


def api_who(request: Request) -> Who:
    """The owner of the bearer token (``Authorization: Bearer pw_...``), for /api/v1: a missing,
    unknown, revoked or expired token is 401 JSON with WWW-Authenticate."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiUnauthorised("no access token given: send Authorization: Bearer pw_... (peerwatch token create)")
    with Session(engine_of(request), expire_on_commit=False) as s:
        try:
            principal = accounts.token_principal(s, token.strip(), SystemClock())
        except MissingActor as e:
            raise ApiUnauthorised(str(e)) from None
        training = accounts.is_training(s)
        clock = action_clock(s, training)
        s.commit()  # the token's last use
    return Who(principal=principal, clock=clock, csrf="", session_id=0, training=training)


def csrf_matches(expected: str, given: Any) -> bool:
    if not expected or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


# What a posted form may hold, checked as it is parsed (starlette refuses more before any of it is
# read by a handler): one file more than the most any form takes (10, the use cases say so), a
# field count no page comes near, and a body no larger than that many files of the upload limit.
MAX_FILES = 11
MAX_FIELDS = 300
FORM_SLACK = 1024 * 1024  # the fields besides the files


async def posted(request: Request) -> Any:
    """The request's form, parsed once (the request keeps it) within ``MAX_FILES`` and
    ``MAX_FIELDS``; a body declared larger than the files it may hold is refused unread."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_FILES * max_upload_bytes() + FORM_SLACK:
        raise InvalidInput(
            f"what was sent is too large: at most {MAX_FILES - 1} files of up to "
            f"{max_upload_bytes() // (1024 * 1024)} MB each; nothing was stored"
        )
    return await request.form(max_files=MAX_FILES, max_fields=MAX_FIELDS)


async def uploaded(request: Request, field: str) -> list[tuple[str, bytes]]:
    """The files posted under ``field`` (name, bytes), an empty file input left out: at most
    ``MAX_FILES - 1`` (refused before any is read), each read no further than one byte past the
    upload limit (one declared larger is refused unread, naming it)."""
    from starlette.datastructures import UploadFile  # lazy: only the forms with files need it (what the parser makes)

    limit = max_upload_bytes()
    sent = await posted(request)
    try:
        values = [v for v in sent.getlist(field) if isinstance(v, UploadFile) and (v.filename or v.size)]
        if len(values) > MAX_FILES - 1:
            raise InvalidInput(f"{len(values)} files sent: at most {MAX_FILES - 1}; nothing was stored")
        out = []
        for v in values:
            if v.size is not None:
                check_size(v.filename or "", v.size, limit)  # too large: refused unread
            out.append((v.filename or "", await v.read(limit + 1)))
        return out
    finally:
        await sent.close()  # the spooled temporary files, now (the form's text fields stay)


async def form(request: Request, who: Who) -> dict[str, str]:
    """The posted form's fields (one value each; the last of repeated names; files left out),
    after its ``csrf_token`` is checked against the session's: 403 if missing or wrong."""
    data = await posted(request)
    fields: dict[str, str] = {}
    for key, value in data.multi_items():
        if isinstance(value, str):
            fields[key] = value
    if not csrf_matches(who.csrf, fields.get(CSRF_FIELD)):
        raise CsrfRefused(CSRF_REFUSED)
    fields.pop(CSRF_FIELD, None)
    return fields


async def form_lists(request: Request, who: Who) -> dict[str, list[str]]:
    """As ``form``, keeping every value of a repeated name (checkboxes), in order."""
    data = await posted(request)
    fields: dict[str, list[str]] = {}
    for key, value in data.multi_items():
        if isinstance(value, str):
            fields.setdefault(key, []).append(value)
    given = fields.pop(CSRF_FIELD, [])
    if len(given) != 1 or not csrf_matches(who.csrf, given[0]):
        raise CsrfRefused(CSRF_REFUSED)
    return fields


# The dependencies as annotations (``def page(request: Request, me: Me)``): ruff's B008 forbids
# ``Depends(...)`` as a default.
Me = Annotated[Who, Depends(who)]
ApiMe = Annotated[Who, Depends(api_who)]
