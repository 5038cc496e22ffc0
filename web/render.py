"""Pages: one Jinja2 environment over web/templates and the NHS.UK design system's macros
(nhsuk-frontend-jinja), autoescaped; ``page`` renders a template with what every page needs.

A template extends ``base.html`` and fills ``title`` and ``content``; the NHS.UK macros are
imported by their path, e.g. ``{% from "nhsuk/components/button/macro.jinja" import button %}``.
Every page gets: ``csrf_token`` (for its forms), ``who`` and ``principal`` (None when signed
out), ``training`` (the banner), ``nav`` (the header's links, the current one marked), ``path``
(the current path) and the filter/global ``show`` (an instant as Europe/London).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import ChainableUndefined, ChoiceLoader, Environment, FileSystemLoader, PackageLoader, select_autoescape

from states.clock import show as show_instant
from states.views.portal import has_staff_role
from web.deps import Who

TEMPLATES = Path(__file__).parent / "templates"
TRAINING_BANNER = "Training database: simulated dates and accounts; letters are never sent"

# The header's links for network staff: (label, href, shown to administrators only).
NAV: tuple[tuple[str, str, bool], ...] = (
    ("My work", "/", False),
    ("Risks", "/items/risk", False),
    ("Visits", "/items/visit", False),
    ("Reports", "/items/report", False),
    ("Appeals", "/items/appeal", False),
    ("Complaints", "/items/complaint", False),
    ("Create", "/create", False),
    ("Outbox", "/outbox", False),
    ("Contacts", "/contacts", False),
    ("Dashboard", "/dashboard", False),
    ("Perinatal alerts", "/perinatal/alerts", False),
    ("Admin", "/admin/users", True),
)
# The header's links for Trust and commissioner users (no staff role): the portal's pages, and the
# lists of the items their grants reach.
PORTAL_NAV: tuple[tuple[str, str, bool], ...] = (
    ("What is asked of us", "/portal", False),
    ("Shared learning", "/learning", False),
    ("Risks", "/items/risk", False),
    ("Visits", "/items/visit", False),
    ("Reports", "/items/report", False),
)


def show(value: Any) -> str:
    """A value as people read it: an instant in Europe/London, a date as YYYY-MM-DD, None as ''."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return show_instant(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _environment() -> Environment:
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(str(TEMPLATES)), PackageLoader("nhsuk_frontend_jinja", "templates")]),
        autoescape=select_autoescape(("html", "jinja", "xml"), default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        undefined=ChainableUndefined,  # the NHS.UK macros read params.a.b where a may be missing
    )
    env.filters["show"] = show
    env.globals["show"] = show
    return env


ENV = _environment()


def nav_for(who: Who | None, path: str) -> list[dict[str, Any]]:
    """The header's links this person sees, the one for ``path`` marked current."""
    if who is None:
        return []
    admin = who.principal.holds("administrator")
    items = []
    for label, href, admin_only in NAV if has_staff_role(who.principal) else PORTAL_NAV:
        if admin_only and not admin:
            continue
        current = path == href if href == "/" else (path == href or path.startswith(href + "/"))
        items.append({"text": label, "href": href, "current": current, "active": current})
    return items


def context(request: Request, who: Who | None, **ctx: Any) -> dict[str, Any]:
    path = request.url.path
    base: dict[str, Any] = {
        "request": request,
        "who": who,
        "principal": who.principal if who else None,
        "csrf_token": who.csrf if who else "",
        # Signed out (the sign-in and error pages): the mark read when the app started.
        "training": bool(who.training) if who else bool(getattr(request.app.state, "training", False)),
        "training_banner": TRAINING_BANNER,
        "nav": nav_for(who, path),
        "path": path,
        "assets": "/assets",
    }
    base.update(ctx)
    return base


def render(template: str, **ctx: Any) -> str:
    return ENV.get_template(template).render(**ctx)


def page(request: Request, template: str, who: Who | None, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    """The page ``template`` for ``who`` (None on the sign-in and error pages), with ``ctx``."""
    return HTMLResponse(render(template, **context(request, who, **ctx)), status_code=status_code)


def redirect(url: str) -> RedirectResponse:
    """See other (303): after a POST, the browser GETs ``url``."""
    return RedirectResponse(url, status_code=303)
