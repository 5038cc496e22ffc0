"""Creating items: raise a risk, propose a visit, receive a complaint (``/create/{kind}``).

Each form posts to itself; the use case (states/services/intake.py) decides and refuses, the
page shows its reason in an error summary with the fields as typed. A created item is a 303
to its page. The services offered are those where the person may fire the opening trigger
(states/services/web_manage.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from states.clock import local_date
from states.errors import NotFound, PeerwatchError, PermissionDenied
from states.machines.complaint import ROUTES as COMPLAINT_CATEGORIES
from states.services import intake, web_manage
from web.deps import Who, form
from web.render import page, redirect
from web.routes.manage import StaffMe, db, errors_of, flag, need, need_int, opt, opt_date, opt_int, status_of

router = APIRouter(include_in_schema=False)  # pages, not the API: the OpenAPI document is /api/v1's

FORMS = {
    "risk": ("risk", "raise", "Raise a risk or concern"),
    "visit": ("visit", "propose", "Propose a visit"),
    "complaint": ("complaint", "receive", "Receive a complaint"),
}
LEVELS = [("IR", "Immediate risk (IR)"), ("SC", "Serious concern (SC)"), ("GC", "General concern (GC)")]
SCALE = [(str(n), str(n)) for n in range(1, 7)]


def _choices(request: Request, me: Who, kind: str) -> dict[str, Any]:
    """What the form offers this person: the services (or networks) they may open ``kind`` at."""
    model, trigger, _ = FORMS[kind]
    with db(request) as s:
        svcs = web_manage.creatable_services(s, me.principal, model, trigger)
        if kind != "complaint":
            return {"services": svcs, "networks": []}
        nets = web_manage.creatable_networks(s, me.principal, model, trigger)
        codes = {n["code"] for n in nets}
        return {"networks": nets, "services": [sv for sv in svcs if sv["network"] in codes]}


def _show(
    request: Request, me: Who, kind: str, values: dict[str, str], errors: list[dict[str, Any]], status: int = 200
) -> HTMLResponse:
    choices = _choices(request, me, kind)
    if not choices["services"] and not choices["networks"]:
        raise PermissionDenied(f"{me.name} may not {FORMS[kind][1]} a {kind}: no role of theirs may, anywhere")
    return page(
        request,
        f"create/{kind}.html",
        me,
        status_code=status,
        title=FORMS[kind][2],
        values=values,
        errors=errors,
        levels=LEVELS,
        scale=SCALE,
        categories=[(c, c.replace("_", " ")) for c in COMPLAINT_CATEGORIES],
        today=local_date(me.clock.now()).isoformat(),
        **choices,
    )


@router.get("/create", response_class=HTMLResponse)
def create_index(request: Request, me: StaffMe) -> HTMLResponse:
    return page(request, "create/index.html", me, forms=[(k, v[2]) for k, v in FORMS.items()])


@router.get("/create/{kind}", response_class=HTMLResponse)
def create_form(request: Request, kind: str, me: StaffMe) -> HTMLResponse:
    if kind not in FORMS:
        raise NotFound(f"nothing called {kind!r} is created here")
    return _show(request, me, kind, {}, [])


@router.post("/create/{kind}")
async def create_post(request: Request, kind: str, me: StaffMe) -> Response:
    if kind not in FORMS:
        raise NotFound(f"nothing called {kind!r} is created here")
    fields = await form(request, me)
    field = None
    try:
        with db(request) as s:
            if kind == "risk":
                field = "service"
                out = intake.raise_risk(
                    s,
                    service=need_int(fields, "service", "the service"),
                    level=need(fields, "level", "the level (IR, SC or GC)"),
                    title=need(fields, "title", "what was found"),
                    standard=opt(fields, "standard"),
                    visit_date=opt_date(fields, "visit_date", "visit date"),
                    identified=opt_date(fields, "identified", "date identified"),
                    impact=opt_int(fields, "impact", "impact"),
                    likelihood=opt_int(fields, "likelihood", "likelihood"),
                    doctors_in_training=flag(fields, "doctors_in_training"),
                    principal=me.principal,
                    clock=me.clock,
                    note=opt(fields, "note"),
                )
            elif kind == "visit":
                field = "service"
                out = intake.propose_visit(
                    s,
                    need_int(fields, "service", "the service"),
                    principal=me.principal,
                    clock=me.clock,
                    reason=opt(fields, "reason"),
                )
            else:
                field = "network"
                received = opt_date(fields, "received", "date received") or local_date(me.clock.now())
                out = intake.receive_complaint(
                    s,
                    network=need(fields, "network", "the network"),
                    category=need(fields, "category", "the category"),
                    from_name=need(fields, "from_name", "the complainant's name"),
                    from_email=need(fields, "from_email", "the complainant's email"),
                    summary=need(fields, "summary", "what the complaint is about"),
                    service=opt_int(fields, "service", "service"),
                    about_person=flag(fields, "about_person"),
                    received=received,
                    principal=me.principal,
                    clock=me.clock,
                )
            new_id = out.row.id
            s.commit()
    except PeerwatchError as exc:
        return _show(request, me, kind, fields, errors_of(exc, field), status_of(exc))
    return redirect(f"/items/{kind}/{new_id}")
