"""Security headers on every response (pages, errors, static files, the API).

The Content-Security-Policy allows scripts, styles, fonts and images from this site only (no
inline script or style anywhere: the templates link /static and /assets files), no framing,
forms posting only here. Pages are ``Cache-Control: no-store`` (they show a person's work);
static files may be cached. Strict-Transport-Security only when the cookies are Secure, i.e.
behind TLS (PEERWATCH_WEB_SECURE_COOKIES).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.deps import Settings

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"
FIXED = frozenset(
    {b"content-security-policy", b"x-content-type-options", b"x-frame-options", b"cross-origin-opener-policy",
     b"permissions-policy"}
)  # fmt: skip
DEFAULTS = ((b"referrer-policy", b"same-origin"),)


def _fixed(csp: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", csp.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    ]


CACHEABLE = ("/static/", "/assets/")


class SecurityHeaders:
    """Pure ASGI middleware (works for StaticFiles and exception responses alike). It also
    answers an unhandled exception with ``fault``'s page (a 500 without a traceback): Starlette's
    own last-resort handler sits outside every middleware, so its page would lack these headers."""

    def __init__(self, app: ASGIApp, secure: bool, fault: Callable[[Request, Exception], Response]) -> None:
        self.app = app
        self.secure = secure
        self.fault = fault

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        csp = CSP
        cacheable = path.startswith(CACHEABLE)
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                given = message.get("headers", [])
                named = {k.lower() for k, _ in given}
                # The policy headers are always these (a route cannot weaken them); the referrer
                # and caching ones are defaults a route may set itself (a calendar feed does).
                headers = [(k, v) for k, v in given if k.lower() not in FIXED]
                headers += _fixed(csp)
                headers += [(k, v) for k, v in DEFAULTS if k not in named]
                if not cacheable and b"cache-control" not in named:
                    headers.append((b"cache-control", b"no-store"))
                if self.secure:
                    headers.append((b"strict-transport-security", HSTS.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if started:  # the page was half sent: nothing better to do than let the server close it
                raise
            response = self.fault(Request(scope, receive), exc)
            await response(scope, receive, send_with_headers)


def install(app: ASGIApp, settings: Settings, fault: Callable[[Request, Exception], Response]) -> None:
    app.add_middleware(SecurityHeaders, secure=settings.secure_cookies, fault=fault)  # type: ignore[attr-defined]
