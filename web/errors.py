"""What a refusal looks like on the web: each PeerwatchError as a status code and its one-line
reason, an HTML page (error.html) or, under /api/, JSON ``{"error": reason}``. Nothing becomes a
500 but a real fault, and that page shows no traceback (the log has it).

    NotFound                          404
    PermissionDenied, MissingActor    403
    StaleVersion                      409
    InvalidInput, BadDate             422
    InvalidTrigger, GuardRefused      400  (and any other PeerwatchError)
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from states.errors import (
    BadDate,
    InvalidInput,
    MissingActor,
    NotFound,
    PeerwatchError,
    PermissionDenied,
    StaleVersion,
)
from web.deps import SESSION_COOKIE, ApiUnauthorised, CsrfRefused, SignInRequired, Who, sign_in_url, who
from web.render import page, redirect

log = logging.getLogger("peerwatch.web")

STATUS: tuple[tuple[type[PeerwatchError], int], ...] = (
    (NotFound, 404),
    (PermissionDenied, 403),
    (MissingActor, 403),
    (StaleVersion, 409),
    (InvalidInput, 422),
    (BadDate, 422),
)
HEADINGS = {
    400: "That cannot be done",
    401: "Sign in needed",
    403: "You cannot do that",
    404: "Page not found",
    405: "That cannot be done here",
    409: "Someone else changed this first",
    422: "Check what you entered",
    500: "Sorry, there is a problem with the service",
}


def status_of(error: PeerwatchError) -> int:
    for kind, status in STATUS:
        if isinstance(error, kind):
            return status
    return 400


def one_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line[:500] or "refused"


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def signed_in(request: Request) -> Who | None:
    """Who is signed in, for an error page's header (their name, the navigation), or None:
    never a reason to fail (the database may be why the page is an error)."""
    if not request.cookies.get(SESSION_COOKIE):
        return None
    try:
        return who(request)
    except Exception:  # signed out, or the database is the fault: the page is shown without them
        return None


def refusal(
    request: Request, status: int, reason: str, headers: dict[str, str] | None = None, me: Who | None = None
) -> Response:
    """The refusal as JSON for the API, else as the error page (with the header of ``me``, the
    person signed in, when known)."""
    reason = one_line(reason)
    if is_api(request):
        return JSONResponse({"error": reason}, status_code=status, headers=headers)
    heading = HEADINGS.get(status, HEADINGS[400])
    response = page(request, "error.html", me, status_code=status, heading=heading, reason=reason)
    if headers:
        response.headers.update(headers)
    return response


async def _refusal(request: Request, status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    me = None if is_api(request) else await run_in_threadpool(signed_in, request)
    return refusal(request, status, reason, headers, me)


async def _peerwatch(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PeerwatchError)
    return await _refusal(request, status_of(exc), str(exc))


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for e in exc.errors()[:3]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
        problems.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))
    return await _refusal(request, 422, "; ".join(problems) or "the request is not valid")


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers: dict[str, Any] | None = getattr(exc, "headers", None)
    if exc.status_code in (301, 302, 303, 307, 308) and headers and "location" in {k.lower() for k in headers}:
        return Response(status_code=exc.status_code, headers=headers)
    detail = exc.detail if isinstance(exc.detail, str) else HEADINGS.get(exc.status_code, "refused")
    if exc.status_code == 404 and detail == "Not Found":
        detail = "there is no page at this address"
    if exc.status_code == 405 and detail == "Method Not Allowed":
        detail = f"{request.method} is not accepted at this address"
    return await _refusal(request, exc.status_code, detail, headers)


async def _sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    if is_api(request):
        return refusal(request, 401, exc.reason or "sign in first", {"WWW-Authenticate": "Bearer"})
    return redirect(sign_in_url(exc.next_path))


async def _csrf(request: Request, exc: Exception) -> Response:
    return await _refusal(request, 403, str(exc))


async def _api_unauthorised(request: Request, exc: Exception) -> Response:
    reason = one_line(str(exc))
    return JSONResponse(
        {"error": reason},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="peerwatch", error="invalid_token"'},
    )


def unhandled(request: Request, exc: Exception) -> Response:
    """A fault: logged with its traceback, shown as a 500 page (or JSON) without it."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    reason = "the request could not be completed: nothing more is shown here; the server's log has the details"
    try:
        return refusal(request, 500, reason)
    except Exception:  # the error page itself failed: plain text
        log.exception("the error page could not be shown")
        return PlainTextResponse(reason, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(PeerwatchError, _peerwatch)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_exception_handler(CsrfRefused, _csrf)
    app.add_exception_handler(ApiUnauthorised, _api_unauthorised)
