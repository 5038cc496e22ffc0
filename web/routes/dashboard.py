"""The Network Manager's dashboard served live (``/dashboard``, ``/dashboard/{network}``) from the
same read model as the written site (states/views/dashboard.py ``network_page``: the figures of
``peerwatch risk list`` and the artifacts), and the calendar feeds at stable addresses for
subscription (``/feeds/{token}/{network}.ics``, ``/feeds/{token}/{network}/services/{id}.ics``),
authenticated by a feed token of the person's own (``/account/tokens``), revocable.

Who may read which network and which feed is states/services/web_manage.py's rule."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from notifications import ics
from states.clock import local_date
from states.errors import PeerwatchError
from states.services import clocks, web_manage
from states.views import feeds
from states.views.dashboard import network_page
from web.deps import Who, engine_of
from web.render import page
from web.routes.manage import StaffMe, db

router = APIRouter(include_in_schema=False)  # pages, not the API: the OpenAPI document is /api/v1's

ROWS_SHOWN = 500  # per table, as on the written pages; the figures count every row
TABLES = ("register", "overdue", "upcoming", "received_late")


def _network(request: Request, me: Who, code: str, name: str) -> dict[str, Any]:
    today = local_date(me.clock.now())
    with db(request) as s:
        data = network_page(s, today, code, name)
    data["more"] = {}
    for table in TABLES:
        data["more"][table] = len(data[table]) > ROWS_SHOWN
        data[table] = data[table][:ROWS_SHOWN]
    ages = [sum(r["ages"][b] for r in data["open_by_state"]) for b in data["age_buckets"]]
    data["ages_total"] = list(zip(data["age_buckets"], ages, strict=True))
    data["ages_max"] = max([1, *ages])
    data["states_max"] = max([1, *(r["count"] for r in data["open_by_state"])])
    return data


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_index(request: Request, me: StaffMe) -> HTMLResponse:
    with db(request) as s:
        nets = web_manage.dashboard_networks(s, me.principal)
    if len(nets) == 1:
        code, name = nets[0]
        return page(request, "dashboard/network.html", me, d=_network(request, me, code, name), rows_shown=ROWS_SHOWN)
    pages = []
    for code, name in nets:
        d = _network(request, me, code, name)
        pages.append({"code": code, "name": name, **d["figures"]})
    return page(request, "dashboard/index.html", me, pages=pages, as_of=local_date(me.clock.now()))


@router.get("/dashboard/{code}", response_class=HTMLResponse)
def dashboard_network(request: Request, code: str, me: StaffMe) -> HTMLResponse:
    with db(request) as s:
        code, name = web_manage.dashboard_network(s, me.principal, code)
    return page(request, "dashboard/network.html", me, d=_network(request, me, code, name), rows_shown=ROWS_SHOWN)


# ---------------------------------------------------------------- calendar feeds


def _feed(request: Request, token: str, code: str, service_id: int | None) -> Response:
    """The feed as iCalendar, or a bare 404 whatever was wrong (an unknown, revoked or expired
    token, a network or service out of the owner's scope): nothing says which."""
    try:
        with Session(engine_of(request), expire_on_commit=False) as s:
            principal = web_manage.feed_principal(s, token)
            web_manage.feed_scope(s, principal, code, service_id)
            s.commit()  # the token's last use, before the read (which may write the installation's id)
            now = clocks.action_clock(s, None).now()
            body = ics.render_feed(feeds.network_feed(s, code, now, service_id))
    except PeerwatchError:
        return Response("not found\n", status_code=404, media_type="text/plain")
    headers = {"Cache-Control": "private, max-age=300", "Referrer-Policy": "no-referrer"}
    return Response(body, media_type="text/calendar; charset=utf-8", headers=headers)


@router.get("/feeds/{token}/{code}.ics")
def network_feed(request: Request, token: str, code: str) -> Response:
    return _feed(request, token, code, None)


@router.get("/feeds/{token}/{code}/services/{service_id}.ics")
def service_feed(request: Request, token: str, code: str, service_id: str) -> Response:
    if not (service_id.isascii() and service_id.isdigit()) or len(service_id) > 18:
        return Response("not found\n", status_code=404, media_type="text/plain")
    return _feed(request, token, code, int(service_id))
