"""The Trust portal's self-assessment and perinatal pages (issue 16 items 6 and 9).

Self-assessment: a circulated declaration of my service (``/portal/selfassessments/{id}``):
its standards and what is asked by when; the Appendix 2 spreadsheet to download; the completed
one uploaded (every problem listed by row and column, nothing stored from a refused file); or
the same answers online, standard by standard. Both go through the same use case as the network
office's import (``states/services/selfassessment.py``).

Perinatal: a maternity or neonatal service's monthly board reviews as a trend
(``/portal/perinatal/{service_id}``), the month's review form (``.../review``), and, for network
staff, the measure alerts the reviews proposed (``/perinatal/alerts``): raise a concern or
dismiss with a reason (``states/services/board_reviews.py``).

No rule here: the use cases and views decide, the pages show. Another Trust's ids are 404.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from notifications.attachments import RENDERERS
from states.clock import local_date
from states.errors import InvalidInput, PermissionDenied
from states.machines.standards import SpreadsheetRejected
from states.measures import MeasuresRejected
from states.services import board_reviews, selfassessment
from states.views import board_reviews as reviews_view
from web.deps import engine_of, form, posted
from web.errors import one_line
from web.render import page, redirect
from web.routes.manage import Me, db, path_id

router = APIRouter(include_in_schema=False)  # pages, not the API: the OpenAPI document is /api/v1's

UPLOAD_FIELD = "spreadsheet"


# ------------------------------------------------------------------ self-assessment


def _problems(exc: SpreadsheetRejected) -> list[dict[str, Any]]:
    """Each problem as {row, column, text, line}: 'Row 7, column 'Self-Assessment': ...'."""
    out = []
    for p in exc.problems:
        parts = selfassessment.problem_parts(p)
        where = []
        if parts["row"] is not None:
            where.append(f"Row {parts['row']}")
        if parts["column"]:
            where.append(f"column '{parts['column']}'")
        line = (", ".join(where) + ": " if where else "") + parts["text"]
        out.append({**parts, "line": line[:1].upper() + line[1:]})
    return out


def _sa_page(
    request: Request,
    me: Any,
    assessment_id: int,
    *,
    problems: list[dict[str, Any]] | None = None,
    more: int = 0,
    status_code: int = 200,
    banner: str | None = None,
) -> HTMLResponse:
    with db(request) as s:
        data = selfassessment.portal_view(s, me.principal, assessment_id, me.clock)
    return page(
        request,
        "portal_uploads/selfassessment.html",
        me,
        status_code=status_code,
        sa=data,
        problems=problems or [],
        more=more,
        banner=banner,
        summary=[{"field": "upload", "text": p["line"]} for p in problems or []],
    )


@router.get("/portal/selfassessments/{assessment_id}", response_class=HTMLResponse)
def sa_page(request: Request, assessment_id: str, me: Me, done: Annotated[str, Query(max_length=20)] = "") -> Response:
    """The declaration: the standards, what is asked by when, and the ways to answer it."""
    banner = {"upload": "Your spreadsheet was received.", "online": "Your answers were received."}.get(done)
    return _sa_page(request, me, path_id(assessment_id), banner=banner)


@router.get("/portal/selfassessments/{assessment_id}/spreadsheet")
def sa_spreadsheet(request: Request, assessment_id: str, me: Me) -> Response:
    """The Appendix 2 spreadsheet of this declaration, as circulated."""
    with db(request) as s:
        filename, content_type, renderer, data = selfassessment.portal_spreadsheet(
            s, me.principal, path_id(assessment_id), me.clock
        )
    body = RENDERERS[renderer](data)
    return Response(
        body,
        media_type=content_type,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )


@router.post("/portal/selfassessments/{assessment_id}/upload", response_class=HTMLResponse)
async def sa_upload(request: Request, assessment_id: str, me: Me) -> Response:
    """The completed spreadsheet: received, or refused with every problem listed by row and column."""
    item_id = path_id(assessment_id)
    await form(request, me)  # the CSRF check
    fields = await posted(request)
    try:
        upload = fields.get(UPLOAD_FIELD)
        if not isinstance(upload, UploadFile) or not (upload.filename or "").strip():
            problems = [{"row": None, "column": None, "text": "choose the completed spreadsheet (.xlsx) to upload",
                         "line": "Choose the completed spreadsheet (.xlsx) to upload"}]  # fmt: skip
            return _sa_page(request, me, item_id, problems=problems, status_code=422)
        limit = selfassessment.upload_limit()
        data = await upload.read(limit + 1)  # never more than one byte past the limit in memory
        filename, size = upload.filename, upload.size
    finally:
        await fields.close()  # the spooled upload's temporary file
    try:
        selfassessment.submit_upload(
            engine_of(request), me.principal, item_id, data, filename=filename, size=size, clock=me.clock
        )
    except SpreadsheetRejected as exc:
        return _sa_page(request, me, item_id, problems=_problems(exc), more=exc.more, status_code=422)
    return redirect(f"/portal/selfassessments/{item_id}?done=upload")


def _online_page(
    request: Request,
    me: Any,
    assessment_id: int,
    values: dict[str, str],
    *,
    exc: SpreadsheetRejected | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    with db(request) as s:
        data = selfassessment.portal_view(s, me.principal, assessment_id, me.clock)
    by_row = {std["row"]: std for std in data["standards"]}
    errors: dict[str, str] = {}
    summary = []
    for p in _problems(exc) if exc else []:
        std = by_row.get(p["row"])
        field = next((f for f, c in selfassessment.ONLINE_COLUMNS.items() if c == p["column"]), None)
        name = std["fields"][field] if std and field else ""
        text = f"Standard {std['ref']}, {p['column']}: {p['text']}" if std else p["line"]
        if name:
            errors.setdefault(name, p["text"])
        summary.append({"field": name, "text": text})
    return page(
        request,
        "portal_uploads/online.html",
        me,
        status_code=status_code,
        sa=data,
        values=values,
        errors=errors,
        summary=summary,
    )


@router.get("/portal/selfassessments/{assessment_id}/online", response_class=HTMLResponse)
def sa_online_form(request: Request, assessment_id: str, me: Me) -> Response:
    """The declaration's standards as a form: the service's four columns for each."""
    item_id = path_id(assessment_id)
    with db(request) as s:
        data = selfassessment.portal_view(s, me.principal, item_id, me.clock)
    if data["why_not"]:
        raise PermissionDenied(data["why_not"])
    return _online_page(request, me, item_id, {})


@router.post("/portal/selfassessments/{assessment_id}/online", response_class=HTMLResponse)
async def sa_online(request: Request, assessment_id: str, me: Me) -> Response:
    """The online answers: received, or the form again with each problem beside its standard."""
    item_id = path_id(assessment_id)
    posted = await form(request, me)
    try:
        selfassessment.submit_online(engine_of(request), me.principal, item_id, posted, clock=me.clock)
    except SpreadsheetRejected as exc:
        return _online_page(request, me, item_id, posted, exc=exc, status_code=422)
    return redirect(f"/portal/selfassessments/{item_id}?done=online")


# ------------------------------------------------------------------ perinatal board reviews


@router.get("/portal/perinatal/{service_id}", response_class=HTMLResponse)
def perinatal_trend(
    request: Request,
    service_id: str,
    me: Me,
    months: Annotated[int, Query(ge=1, le=reviews_view.MAX_MONTHS)] = 12,
    done: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    """The service's Appendix 2 measures, months across, measures down."""
    sid = path_id(service_id)
    with db(request) as s:
        data = reviews_view.trend(s, me.principal, sid, months, clock=me.clock)
        may_record = board_reviews.check_role_to_record(s, me.principal, sid)
    return page(
        request,
        "portal_uploads/trend.html",
        me,
        t=data,
        may_record=may_record,
        banner="The board review was recorded." if done == "review" else None,
    )


def _review_page(
    request: Request,
    me: Any,
    service_id: int,
    month: date,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    with db(request) as s:
        data = reviews_view.review_form(s, me.principal, service_id, month)
        if not board_reviews.check_role_to_record(s, me.principal, service_id):
            raise PermissionDenied(
                "the board review is recorded by the Trust's Chief Executive or Medical Director, "
                "or the service's Service Lead"
            )
    shown = dict(data["values"]) if values is None else dict(values)
    if values is None:
        shown = {f"{board_reviews.FIELD_PREFIX}{k}": v for k, v in shown.items()}
        shown["month"] = data["month"].strftime("%Y-%m")
        shown["reviewed_on"] = data["reviewed_on"].isoformat() if data["reviewed_on"] else ""
    errors = errors or {}
    summary = [{"field": k, "text": v} for k, v in errors.items()]
    if problem:
        summary.insert(0, {"field": "", "text": problem})
    return page(
        request,
        "portal_uploads/review.html",
        me,
        status_code=status_code,
        r=data,
        prefix=board_reviews.FIELD_PREFIX,
        values=shown,
        errors=errors,
        summary=summary,
    )


@router.get("/portal/perinatal/{service_id}/review", response_class=HTMLResponse)
def perinatal_review_form(
    request: Request, service_id: str, me: Me, month: Annotated[str, Query(max_length=10)] = ""
) -> Response:
    """The month's review (this month by default), with what was recorded for it already."""
    sid = path_id(service_id)
    day = board_reviews.read_month(month) if month.strip() else local_date(me.clock.now())
    return _review_page(request, me, sid, day)


@router.post("/portal/perinatal/{service_id}/review", response_class=HTMLResponse)
async def perinatal_review(request: Request, service_id: str, me: Me) -> Response:
    """Record the month's review: back to the trend, or the form with each problem beside its measure."""
    sid = path_id(service_id)
    posted = await form(request, me)
    fallback = local_date(me.clock.now())
    try:
        month, reviewed, measures = board_reviews.read_review_form(posted)
        with db(request) as s:
            board_reviews.record_board_review(s, me.principal, sid, month, reviewed, measures, me.clock)
            s.commit()
    except MeasuresRejected as exc:
        errors = {f"{board_reviews.FIELD_PREFIX}{k}": v for k, v in exc.problems.items() if k}
        problem = exc.problems.get("")
        return _review_page(request, me, sid, fallback, values=posted, errors=errors, problem=problem, status_code=422)
    except InvalidInput as exc:  # a month or date refused (BadDate is one too)
        return _review_page(request, me, sid, fallback, values=posted, problem=one_line(str(exc)), status_code=422)
    return redirect(f"/portal/perinatal/{sid}?done=review")


@router.get("/perinatal/alerts", response_class=HTMLResponse)
def alerts(request: Request, me: Me, done: Annotated[str, Query(max_length=10)] = "") -> Response:
    """Network staff: the measure alerts the Trusts' board reviews proposed, to raise or dismiss."""
    if not reviews_view.is_staff(me.principal):
        raise PermissionDenied("the measure alerts are for network staff")
    with db(request) as s:
        rows = reviews_view.open_alerts(s, me.principal)
    banner = {"raised": "A perinatal concern was raised.", "dismissed": "The alert was dismissed."}.get(done)
    return page(request, "portal_uploads/alerts.html", me, alerts=rows, banner=banner)


@router.post("/perinatal/alerts/{alert_id}/raise", response_class=HTMLResponse)
async def alert_raise(request: Request, alert_id: str, me: Me) -> Response:
    """Raise a perinatal concern from the alert (the concern's own use case, as me)."""
    aid = path_id(alert_id)
    posted = await form(request, me)
    with db(request) as s:
        board_reviews.raise_alert(s, me.principal, aid, me.clock, title=posted.get("title"), note=posted.get("note"))
        s.commit()
    return redirect("/perinatal/alerts?done=raised")


@router.post("/perinatal/alerts/{alert_id}/dismiss", response_class=HTMLResponse)
async def alert_dismiss(request: Request, alert_id: str, me: Me) -> Response:
    """Dismiss the alert with a reason."""
    aid = path_id(alert_id)
    posted = await form(request, me)
    with db(request) as s:
        board_reviews.dismiss_alert(s, me.principal, aid, posted.get("reason") or "", me.clock)
        s.commit()
    return redirect("/perinatal/alerts?done=dismissed")
