"""The Trust portal's forms (issue 16 items 5, 7, 8): the service's factual accuracy points on a
draft report (``/portal/reports/{id}/accuracy``), the Chief Executive's appeal against a published
report (``/portal/reports/{id}/appeal``) and the Trust's documents with the further information the
network asks for (``/portal/submissions/{id}``, each version downloadable).

Each page shows what the use case's read model gives (``states/services/portal_submissions.py``):
the form, or why it is not offered. A POST hands the fields and the files' bytes to the use case,
which checks the files by their content and fires the trigger through the engine as the signed-in
account; a refusal is shown on the page with its reason. Another Trust's report or submission is
the same 404 as a missing one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from states.clock import local_date
from states.errors import InvalidInput, PeerwatchError
from states.services import portal_submissions as portal
from web.deps import Who, engine_of, form, form_lists, uploaded
from web.render import page, redirect
from web.routes.manage import Me, db, errors_of, path_id, status_of

router = APIRouter(include_in_schema=False)  # pages, not the API: the OpenAPI document is /api/v1's

UPLOAD_URL = "/uploads/{id}"  # a file sent with an inaccuracy or an appeal (web/routes/responses.py)


async def _files(request: Request, field: str) -> list[tuple[str, bytes]]:
    """The files posted under ``field`` (web.deps.uploaded: counted and sized before read)."""
    return await uploaded(request, field)


def _today(me: Who) -> Any:
    return local_date(me.clock.now())


# --------------------------------------------------------------------------- factual accuracy


def _accuracy(request: Request, me: Who, report_id: str, errors: list[dict[str, Any]], code: int = 200,
              text: str = "") -> HTMLResponse:  # fmt: skip
    rid = path_id(report_id)
    with db(request) as s:
        data = portal.accuracy_page(s, me.principal, rid, _today(me))
    return page(request, "portal_forms/accuracy.html", me, status_code=code, errors=errors, text=text,
                done=request.query_params.get("done") == "1", upload_url=UPLOAD_URL, **data)  # fmt: skip


@router.get("/portal/reports/{report_id}/accuracy", response_class=HTMLResponse)
def accuracy_page(request: Request, report_id: str, me: Me) -> HTMLResponse:
    return _accuracy(request, me, report_id, [])


@router.post("/portal/reports/{report_id}/accuracy")
async def accuracy_add(request: Request, report_id: str, me: Me) -> Response:
    fields = await form(request, me)
    rid = path_id(report_id)
    text = (fields.get("text") or "").strip()
    try:
        files = await _files(request, "files")
        portal.record_inaccuracy(
            engine_of(request), report_id=rid, text=text, files=files, principal=me.principal, clock=me.clock
        )
    except PeerwatchError as exc:
        if status_of(exc) == 404:
            raise
        return _accuracy(request, me, report_id, errors_of(exc, "text"), status_of(exc), text=text)
    return redirect(f"/portal/reports/{rid}/accuracy?done=1")


# --------------------------------------------------------------------------- appeals


def _appeal(request: Request, me: Who, report_id: str, errors: list[dict[str, Any]], code: int = 200,
            statement: str = "", chosen: tuple[str, ...] = ()) -> HTMLResponse:  # fmt: skip
    rid = path_id(report_id)
    with db(request) as s:
        data = portal.appeal_page(s, me.principal, rid, _today(me))
    return page(request, "portal_forms/appeal.html", me, status_code=code, errors=errors, statement=statement,
                chosen=chosen, done=request.query_params.get("done") == "1", upload_url=UPLOAD_URL, **data)  # fmt: skip


@router.get("/portal/reports/{report_id}/appeal", response_class=HTMLResponse)
def appeal_page(request: Request, report_id: str, me: Me) -> HTMLResponse:
    return _appeal(request, me, report_id, [])


@router.post("/portal/reports/{report_id}/appeal")
async def appeal_submit(request: Request, report_id: str, me: Me) -> Response:
    fields = await form_lists(request, me)
    rid = path_id(report_id)
    statement = ((fields.get("statement") or [""])[-1]).strip()
    grounds = tuple(fields.get("grounds") or [])
    try:
        files = await _files(request, "files")
        portal.submit_appeal(
            engine_of(request),
            report_id=rid,
            statement=statement,
            grounds=grounds,
            files=files,
            principal=me.principal,
            clock=me.clock,
        )
    except PeerwatchError as exc:
        if status_of(exc) == 404:
            raise
        field = "grounds" if not grounds else "statement"  # the summary links the input left empty
        return _appeal(request, me, report_id, errors_of(exc, field), status_of(exc), statement, grounds)
    return redirect(f"/portal/reports/{rid}/appeal?done=1")


# --------------------------------------------------------------------------- documents


def _submission(request: Request, me: Who, submission_id: str, errors: list[dict[str, Any]],
                code: int = 200) -> HTMLResponse:  # fmt: skip
    sid = path_id(submission_id)
    with db(request) as s:
        data = portal.submission_page(s, me.principal, sid, _today(me))
    return page(request, "portal_forms/submission.html", me, status_code=code, errors=errors,
                done=request.query_params.get("done") == "1", **data)  # fmt: skip


@router.get("/portal/submissions/{submission_id}", response_class=HTMLResponse)
def submission_page(request: Request, submission_id: str, me: Me) -> HTMLResponse:
    return _submission(request, me, submission_id, [])


@router.post("/portal/submissions/{submission_id}")
async def submission_upload(request: Request, submission_id: str, me: Me) -> Response:
    await form(request, me)
    sid = path_id(submission_id)
    try:
        files = await _files(request, "file")
        if len(files) != 1:
            raise InvalidInput("choose the one file to send")
        portal.upload_document(
            engine_of(request),
            submission_id=sid,
            filename=files[0][0],
            data=files[0][1],
            principal=me.principal,
            clock=me.clock,
        )
    except PeerwatchError as exc:
        if status_of(exc) == 404:
            raise
        return _submission(request, me, submission_id, errors_of(exc, "file"), status_of(exc))
    return redirect(f"/portal/submissions/{sid}?done=1")


@router.get("/portal/submissions/{submission_id}/files/{version}")
def submission_file(request: Request, submission_id: str, version: str, me: Me) -> Response:
    """One version of the document as it was received (a download, never shown inline)."""
    sid, number = path_id(submission_id), path_id(version)
    with db(request) as s:
        found = portal.document_file(s, me.principal, sid, number)
    return Response(
        found.data,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(found.filename, safe='')}",
            "Cache-Control": "private, no-store",
        },
    )
