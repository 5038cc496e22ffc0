"""Panel management (``/visits/{id}/panel``: invite, remove, declarations, the day's high level
feedback), report drafting (``/reports/{id}/draft``: compliance per standard, positive
developments) and the factual accuracy check (``/reports/{id}/accuracy``: inaccuracies and the
Network Manager's and the Regional Lead's decisions). Each form fires one trigger through
``states.services.acting.fire`` with the item's version (a stale form is refused, 409); the
engine decides and refuses, the page shows why. Another network's item is not found."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from states.clock import local_date
from states.errors import InvalidInput, NotFound, PeerwatchError
from states.machines.report import COMPLIANCE
from states.services import acting
from states.views import manage as views
from states.views.work import get_visible
from web.deps import Who, engine_of, form
from web.render import page, redirect
from web.routes.manage import Me, db, errors_of, flag, need, need_int, opt, opt_int, path_id, status_of

router = APIRouter(include_in_schema=False)  # pages, not the API: the OpenAPI document is /api/v1's

PANEL = ("add_panel_member", "remove_panel_member", "record_declaration", "give_feedback")
DRAFT = ("add_standard", "add_positive")
ACCURACY = ("record_inaccuracy", "decide_inaccuracy")
PAGES = {"panel": ("visit", PANEL), "draft": ("report", DRAFT), "accuracy": ("report", ACCURACY)}


def _feedback(fields: dict[str, str]) -> list[dict[str, Any]]:
    """The day's findings, one per line, ``title`` or ``title | standard ref``, per level."""
    risks = []
    for level in ("IR", "SC", "GC"):
        for line in (fields.get(level.lower()) or "").splitlines():
            title, _, ref = line.partition("|")
            if title.strip():
                risks.append({"level": level, "title": title.strip(), "standard_ref": ref.strip() or None})
    return risks


# trigger -> what it reads from the form (params, note)
PARAMS: dict[str, Callable[[dict[str, str]], dict[str, Any]]] = {
    "add_panel_member": lambda f: {"reviewer_id": need_int(f, "reviewer_id", "the reviewer"),
                                   "observer": flag(f, "observer")},
    "remove_panel_member": lambda f: {"reviewer_id": need_int(f, "reviewer_id", "the reviewer")},
    "record_declaration": lambda f: {"reviewer_id": need_int(f, "reviewer_id", "the reviewer"),
                                     "conflicts": opt(f, "conflicts") or ""},
    "give_feedback": lambda f: {"risks": _feedback(f)},
    "add_standard": lambda f: {"ref": need(f, "ref", "the standard's reference"),
                               "status": need(f, "status", "the compliance status"),
                               "descriptor": opt(f, "descriptor") or "", "comment": opt(f, "comment") or ""},
    "add_positive": lambda f: {"text": need(f, "text", "the positive development")},
    "record_inaccuracy": lambda f: {"text": need(f, "text", "the inaccuracy"), "after_visit": flag(f, "after_visit")},
    "decide_inaccuracy": lambda f: {"item_id": need_int(f, "item_id", "the inaccuracy"),
                                    "decision": need(f, "decision", "the decision")},
}  # fmt: skip


def _page(
    request: Request, me: Who, which: str, item_id: str, errors: list[dict[str, Any]], code: int = 200
) -> HTMLResponse:
    kind, triggers = PAGES[which]
    iid = path_id(item_id)
    today = local_date(me.clock.now())
    with db(request) as s:
        row = views.working_page(s, me.principal, kind, iid)
        data: dict[str, Any] = {
            "row": row,
            "place": views.place(s, row),
            "may": views.firable(s, me.principal, kind, row, triggers),
        }
        if which == "panel":
            data["panel"] = views.panel(s, row, today)  # type: ignore[arg-type]
        elif which == "draft":
            data["draft"] = views.draft(row)  # type: ignore[arg-type]
        else:
            data["items"] = views.accuracy(s, iid)
    return page(
        request,
        f"reports/{which}.html",
        me,
        status_code=code,
        kind=kind,
        statuses=[(c, c) for c in COMPLIANCE],
        errors=errors,
        done=request.query_params.get("done") == "1",
        **data,
    )


@router.get("/visits/{visit_id}/panel", response_class=HTMLResponse)
def panel_page(request: Request, visit_id: str, me: Me) -> HTMLResponse:
    return _page(request, me, "panel", visit_id, [])


@router.get("/reports/{report_id}/draft", response_class=HTMLResponse)
def draft_page(request: Request, report_id: str, me: Me) -> HTMLResponse:
    return _page(request, me, "draft", report_id, [])


@router.get("/reports/{report_id}/accuracy", response_class=HTMLResponse)
def accuracy_page(request: Request, report_id: str, me: Me) -> HTMLResponse:
    return _page(request, me, "accuracy", report_id, [])


async def _fire(request: Request, me: Who, which: str, item_id: str, trigger: str) -> Response:
    kind, triggers = PAGES[which]
    if trigger not in triggers:
        raise NotFound(f"nothing called {trigger!r} is done on this page")
    fields = await form(request, me)
    try:
        iid = path_id(item_id)
        with db(request) as s:
            get_visible(s, me.principal, kind, iid)  # another network's item: not found
        params = PARAMS[trigger](fields)
        if trigger == "give_feedback" and not params["risks"] and not flag(fields, "nothing_found"):
            raise InvalidInput("list what was found, or tick that nothing was found")
        acting.fire(
            engine_of(request),
            me.principal,
            me.clock,
            kind,
            iid,
            trigger,
            note=opt(fields, "note"),
            params=params,
            version=opt_int(fields, "version", "the version"),
        )
    except PeerwatchError as exc:
        return _page(request, me, which, item_id, errors_of(exc), status_of(exc))
    base = "/visits" if kind == "visit" else "/reports"
    return redirect(f"{base}/{iid}/{which}?done=1")


@router.post("/visits/{visit_id}/panel/{trigger}")
async def panel_fire(request: Request, visit_id: str, trigger: str, me: Me) -> Response:
    return await _fire(request, me, "panel", visit_id, trigger)


@router.post("/reports/{report_id}/draft/{trigger}")
async def draft_fire(request: Request, report_id: str, trigger: str, me: Me) -> Response:
    return await _fire(request, me, "draft", report_id, trigger)


@router.post("/reports/{report_id}/accuracy/{trigger}")
async def accuracy_fire(request: Request, report_id: str, trigger: str, me: Me) -> Response:
    return await _fire(request, me, "accuracy", report_id, trigger)
