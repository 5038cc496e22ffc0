"""The web application's security headers and its pages' hygiene (issue 15): every response
(pages, error pages, a fault's 500, the API's refusals, static files) carries the CSP and the
rest; no page or template holds an inline script, style or event handler (the CSP would block
them); each PeerwatchError maps to its status with a one-line reason and never a traceback;
the design system's files are refused unless they match their pinned sha512."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import sys
import tarfile
import warnings
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from fastapi import Request
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models.web import SignInAttempt
from states.errors import (
    BadDate,
    GuardRefused,
    InvalidInput,
    InvalidTrigger,
    MissingActor,
    NotFound,
    PeerwatchError,
    PermissionDenied,
    StaleVersion,
)
from tests.support_browser import ROOT, free_port, start
from web import assets
from web.app import create_app
from web.deps import Settings
from web.security import CSP

with warnings.catch_warnings():  # starlette asks for httpx2 on import; httpx 0.28 works the same here
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"
ERRORS: list[tuple[type[PeerwatchError], int]] = [
    (NotFound, 404),
    (PermissionDenied, 403),
    (MissingActor, 403),
    (StaleVersion, 409),
    (InvalidInput, 422),
    (BadDate, 422),
    (GuardRefused, 400),
    (InvalidTrigger, 400),
]


def client_for(db_url: str, settings: Settings | None = None) -> TestClient:
    app = create_app(db_url, settings or Settings())

    def refuse(name: str) -> None:
        kind = {k.__name__: k for k, _ in ERRORS}[name]
        raise kind(f"refused by {name}\nsecond line never shown apart")

    def fault() -> None:
        raise RuntimeError("secret internals: /etc/peerwatch password=hunter2")

    def typed(number: int) -> dict[str, int]:
        return {"number": number}

    def echo(request: Request) -> dict[str, str]:
        return {"path": request.url.path}

    for prefix in ("", "/api/v1"):
        app.add_api_route(prefix + "/refuse/{name}", refuse, methods=["GET"])
        app.add_api_route(prefix + "/fault", fault, methods=["GET"])
        app.add_api_route(prefix + "/typed/{number}", typed, methods=["GET"])
    return TestClient(app, base_url="http://testserver", raise_server_exceptions=False)


def assert_secure_headers(response, *, page: bool = True) -> None:  # type: ignore[no-untyped-def]
    h = response.headers
    assert h["content-security-policy"] == CSP  # one policy for every path: no page is exempt
    csp = h["content-security-policy"]
    for directive in ("frame-ancestors 'none'", "script-src 'self'", "object-src 'none'", "base-uri 'none'"):
        assert directive in csp, directive
    assert "'unsafe-inline'" not in csp
    assert h["x-content-type-options"] == "nosniff"
    assert h["x-frame-options"] == "DENY"
    assert h["referrer-policy"] in ("same-origin", "strict-origin-when-cross-origin")
    if page:
        assert h["cache-control"] == "no-store"
    assert "server" not in h or "uvicorn" not in h["server"].lower()


def test_pages_and_refusals_carry_the_security_headers(db_url: str, db: Engine) -> None:
    client = client_for(db_url)
    for path, status in [
        ("/sign-in", 200),
        ("/healthz", 200),
        ("/no-such-page", 404),
        ("/typed/not-a-number", 422),
        ("/fault", 500),
        ("/api/v1/fault", 500),
        ("/api/v1/no-such-thing", 404),
        ("/refuse/StaleVersion", 409),
    ]:
        r = client.get(path, follow_redirects=False)
        assert r.status_code == status, (path, r.status_code, r.text[:300])
        assert_secure_headers(r)
    r = client.post("/sign-out", follow_redirects=False)  # signed out: to the sign-in page
    assert r.status_code == 303 and r.headers["location"].startswith("/sign-in")
    assert_secure_headers(r)
    assert "strict-transport-security" not in r.headers  # plain HTTP: no HSTS


def test_behind_tls_every_response_asks_for_https_only(db_url: str, db: Engine) -> None:
    client = client_for(db_url, Settings(secure_cookies=True))
    for path in ("/sign-in", "/no-such-page", "/static/peerwatch.css"):
        assert client.get(path).headers["strict-transport-security"].startswith("max-age=31536000")


def test_static_files_carry_the_headers_and_may_be_cached(db_url: str, db: Engine) -> None:
    client = client_for(db_url)
    r = client.get("/static/peerwatch.css")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")
    assert_secure_headers(r, page=False)
    assert r.headers.get("cache-control") != "no-store"
    if assets.assets_ready():
        r = client.get("/assets/nhsuk/nhsuk-frontend.min.css")
        assert r.status_code == 200 and "nhsuk-header" in r.text and "@font-face" not in r.text
        assert_secure_headers(r, page=False)


@pytest.mark.parametrize(("error", "status"), ERRORS, ids=[e.__name__ for e, _ in ERRORS])
def test_each_refusal_is_its_status_with_one_line(db_url: str, db: Engine, error: type, status: int) -> None:
    client = client_for(db_url)
    page = client.get(f"/refuse/{error.__name__}")
    assert page.status_code == status and page.headers["content-type"].startswith("text/html")
    assert f"refused by {error.__name__} second line never shown apart" in page.text
    api = client.get(f"/api/v1/refuse/{error.__name__}")
    assert api.status_code == status
    assert api.json() == {"error": f"refused by {error.__name__} second line never shown apart"}


def test_a_fault_is_a_500_without_its_details(db_url: str, db: Engine, caplog: pytest.LogCaptureFixture) -> None:
    client = client_for(db_url)
    for path in ("/fault", "/api/v1/fault"):
        r = client.get(path)
        assert r.status_code == 500
        for secret in ("hunter2", "Traceback", "RuntimeError", "/etc/peerwatch"):
            assert secret not in r.text
    assert "hunter2" in caplog.text  # the log has it
    assert list(client.get("/api/v1/fault").json()) == ["error"]


def test_a_validation_error_is_one_line(db_url: str, db: Engine) -> None:
    r = client_for(db_url).get("/api/v1/typed/seven")
    assert r.status_code == 422 and list(r.json()) == ["error"]
    assert "number" in r.json()["error"] and "\n" not in r.json()["error"]


# ---------------------------------------------------------------- no inline script or style


class Inline(HTMLParser):
    """Collects what the CSP would block: inline scripts and styles, style and on* attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {k.lower() for k, _ in attrs}
        if tag == "style":
            self.found.append("<style>")
        if tag == "script" and "src" not in names:
            self.found.append("<script> without src")
        if tag == "script":
            self._in = "script"
        self.found += [f"{tag} {n}=" for n in names if n == "style" or n.startswith("on")]
        href = dict(attrs).get("href") or ""
        if href.strip().lower().startswith("javascript:"):
            self.found.append(f"{tag} href=javascript:")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script" and data.strip():
            self.found.append("<script> with a body")


def inline_in(html: str) -> list[str]:
    parser = Inline()
    parser.feed(html)
    return parser.found


def test_no_template_holds_an_inline_script_or_style() -> None:
    templates = sorted(TEMPLATES.rglob("*.html"))
    assert any(p.name == "base.html" for p in templates)
    found = {str(p.relative_to(TEMPLATES)): inline_in(p.read_text()) for p in templates}
    assert {k: v for k, v in found.items() if v} == {}


def test_rendered_pages_hold_no_inline_script_or_style(db_url: str, db: Engine) -> None:
    client = client_for(db_url)
    for path in ("/sign-in", "/no-such-page", "/fault", "/refuse/NotFound"):
        html = client.get(path).text
        assert "<script" in html and inline_in(html) == [], path


def test_the_parser_sees_what_it_must() -> None:
    assert inline_in("<script>alert(1)</script>") == ["<script> without src", "<script> with a body"]
    assert sorted(inline_in('<p style="x" onclick="y">')) == ["p onclick=", "p style="]
    assert inline_in('<script type="module" src="/static/peerwatch.js"></script>') == []


# ---------------------------------------------------------------- the design system's files


def tarball(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def test_a_tarball_not_matching_its_pinned_sha512_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    good = tarball({"package/axe.min.js": b"axe", "package/LICENSE": b"MPL"})
    assets.verify(good, integrity(good))
    with pytest.raises(assets.AssetError, match="integrity mismatch"):
        assets.verify(good + b"x", integrity(good))
    dest = tmp_path / "assets"
    with pytest.raises(assets.AssetError, match="integrity mismatch"):
        assets.install(dest, fetcher=lambda url: good)  # not the pinned bytes
    assert not dest.exists() and list(tmp_path.iterdir()) == []

    def offline(url: str) -> bytes:
        raise OSError("network unreachable")

    with pytest.raises(assets.AssetError, match=re.escape("could not download https://registry.npmjs.org/")):
        assets.install(dest, fetcher=offline)
    assert not dest.exists()


def test_the_stylesheet_loses_its_external_fonts_and_keeps_the_rest(tmp_path: Path) -> None:
    css = b'@font-face{font-family:F;src:url(https://assets.nhs.uk/fonts/F.woff2) format("woff2")}.nhsuk-x{color:red}'
    package = assets.Package("p", "1.0.0", integrity(b""), (("package/a.css", "a.css"), ("package/img/", "img/")))
    written = assets.extract(package, tarball({"package/a.css": css, "package/img/i.svg": b"<svg/>"}), tmp_path)
    assert {p.relative_to(tmp_path).as_posix() for p in written} == {"a.css", "img/i.svg"}
    assert (tmp_path / "a.css").read_text() == ".nhsuk-x{color:red}"


# ---------------------------------------------------------------- peerwatch web, behind a proxy


def failed_sign_in_from(base: str, forwarded_for: str) -> None:
    with httpx.Client(base_url=base, timeout=30) as browser:
        token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/sign-in").text)
        assert token
        data = {"email": "nobody@example.nhs.uk", "password": "wrong wrong wrong 1", "csrf_token": token.group(1)}
        r = browser.post("/sign-in", data=data, headers={"X-Forwarded-For": forwarded_for})
        assert r.status_code == 401


def attempt_addresses(db: Engine) -> list[str | None]:
    with Session(db) as s:
        return [a.address for a in s.exec(select(SignInAttempt).order_by(SignInAttempt.id)).all()]


@pytest.mark.parametrize("behind_proxy", [True, False])
def test_peerwatch_web_believes_forwarded_addresses_only_from_its_proxy(
    db_url: str, db: Engine, tmp_path: Path, behind_proxy: bool
) -> None:
    """``peerwatch web`` under real uvicorn: production settings (no server header), and the
    sign-in throttles count the address the proxy forwards only with --proxy-headers."""
    port = free_port()
    argv = [str(Path(sys.executable).with_name("peerwatch")), "web", "--port", str(port)]
    argv += ["--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"] if behind_proxy else []
    env = {"PYTHONPATH": str(ROOT)}  # this checkout's web/, whatever the installed package maps
    server = start(argv, port, tmp_path / "web.log", "/healthz", env)
    try:
        r = httpx.get(server.url("/healthz"), timeout=30)
        assert r.text == "ok" and "server" not in r.headers
        assert r.headers["content-security-policy"] == CSP
        failed_sign_in_from(server.base, "203.0.113.9")
    finally:
        server.stop()
    assert attempt_addresses(db) == ["203.0.113.9" if behind_proxy else "127.0.0.1"]
    assert f"http://127.0.0.1:{port}/" in (tmp_path / "web.log").read_text()
