"""Taking up an invitation to the portal (issue 16): ``GET /invitation/{token}`` asks the invited
person to choose a password; ``POST`` sets it, uses the invitation up and signs them in (then
"/"). The rules are ``states.services.trust_accounts`` (``invitation_for``,
``accept_invitation``); an unknown, used, replaced or expired link gets one page (404, nothing
changed) whichever it is.

No session yet, so the form's CSRF token is a double-submit cookie (HttpOnly, scoped to
/invitation), as the sign-in form's is. The token is in the path: these responses say
``Referrer-Policy: no-referrer`` (no link followed from the page carries it away) and
``Cache-Control: no-store``; the form posts back to the same address without repeating it.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from states.errors import InvalidInput, NotFound, PermissionDenied
from states.services import trust_accounts
from web.auth import client_address, start_session
from web.deps import CSRF_FIELD, CSRF_REFUSED, clock_of, csrf_matches, engine_of, posted, settings_of
from web.render import page, redirect

router = APIRouter(include_in_schema=False)  # pages, not the API: the OpenAPI document is /api/v1's

CSRF_COOKIE = "peerwatch_invite"
COOKIE_PATH = "/invitation"
MAX_FIELD = 1024  # the policy allows 256 characters; anything longer is refused unread


def _private(response: Response) -> Response:
    """The token is in this page's address: never sent on as a referrer, never cached."""
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _invalid(request: Request) -> Response:
    return _private(page(request, "invitation/invalid.html", None, status_code=404, message=trust_accounts.INVALID))


def _form(
    request: Request, view: trust_accounts.InvitationView, *, errors: list[dict[str, str]] | None = None,
    status_code: int = 200,
) -> Response:  # fmt: skip
    token = request.cookies.get(CSRF_COOKIE) or ""
    if not 32 <= len(token) <= 100:
        token = secrets.token_urlsafe(32)
    response = page(
        request, "invitation/accept.html", None, status_code=status_code, csrf_token=token, invited=view,
        errors=errors or [],
    )  # fmt: skip
    settings = settings_of(request)
    response.set_cookie(CSRF_COOKIE, token, max_age=3600, path=COOKIE_PATH, secure=settings.secure_cookies,
                        httponly=True, samesite="strict")  # fmt: skip
    return _private(response)


def _view(request: Request, token: str) -> trust_accounts.InvitationView:
    with Session(engine_of(request)) as s:
        return trust_accounts.invitation_for(s, token, clock_of(request))


@router.get("/invitation/{token}", response_class=HTMLResponse)
def invitation_page(request: Request, token: str) -> Response:
    try:
        view = _view(request, token)
    except NotFound:
        return _invalid(request)
    return _form(request, view)


@router.post("/invitation/{token}")
async def invitation_accept(request: Request, token: str) -> Response:
    try:
        view = await run_in_threadpool(_view, request, token)
    except NotFound:
        return _invalid(request)
    data = await posted(request)
    fields = {k: v for k, v in data.items() if isinstance(v, str)}
    if not csrf_matches(request.cookies.get(CSRF_COOKIE, ""), fields.get(CSRF_FIELD)):
        return _form(request, view, errors=[{"text": CSRF_REFUSED, "href": "#password"}], status_code=403)
    password, again = fields.get("password", ""), fields.get("confirm", "")
    errors = []
    if not password:
        errors.append({"text": "Enter a password", "href": "#password"})
    elif len(password) > MAX_FIELD:
        errors.append({"text": "The password is too long: use at most 256 characters", "href": "#password"})
    elif password != again:
        errors.append({"text": "The two passwords are not the same: enter it twice", "href": "#confirm"})
    if errors:
        return _form(request, view, errors=errors, status_code=422)
    try:
        done = await run_in_threadpool(
            trust_accounts.accept_invitation, engine_of(request), token, password, client_address(request),
            clock_of(request),
        )  # fmt: skip
    except NotFound:
        return _invalid(request)
    except (InvalidInput, PermissionDenied) as e:
        text = str(e)
        return _form(request, view, errors=[{"text": text[:1].upper() + text[1:], "href": "#password"}], status_code=422)  # fmt: skip
    response = start_session(redirect("/"), settings_of(request), done)
    response.delete_cookie(CSRF_COOKIE, path=COOKIE_PATH, secure=settings_of(request).secure_cookies, httponly=True,
                           samesite="strict")  # fmt: skip
    return _private(response)
