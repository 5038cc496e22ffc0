"""Security headers on every response (pages, errors, static files, the API).

The Content-Security-Policy allows scripts, styles, fonts and images from this site only (no
inline script or style anywhere: the templates link /static and /assets files), no framing,
forms posting only here. Pages are ``Cache-Control: no-store`` (they show a person's work);
static files may be cached. Strict-Transport-Security only when the cookies are Secure, i.e.
behind TLS (PEERWATCH_WEB_SECURE_COOKIES).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.deps import Settings

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
# The API's interactive documentation (/api/docs) loads Swagger UI from a CDN with an inline
# script: that one page gets a policy naming them (nothing else changes for it).
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "font-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"
CACHEABLE = ("/static/", "/assets/")


class SecurityHeaders:
    """Pure ASGI middleware (works for StaticFiles and exception responses alike)."""

    def __init__(self, app: ASGIApp, secure: bool) -> None:
        self.app = app
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        csp = DOCS_CSP if path == "/api/docs" else CSP
        cacheable = path.startswith(CACHEABLE)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control" or cacheable]
                headers += [
                    (b"content-security-policy", csp.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
                ]
                if not cacheable:
                    headers.append((b"cache-control", b"no-store"))
                if self.secure:
                    headers.append((b"strict-transport-security", HSTS.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: ASGIApp, settings: Settings) -> None:
    app.add_middleware(SecurityHeaders, secure=settings.secure_cookies)  # type: ignore[attr-defined]
