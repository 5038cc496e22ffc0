"""The Trust's formal response to an immediate risk or serious concern (issue 16 item 3), and
downloading a file sent through the portal (item 12).

- ``GET /risks/{id}/respond``: the form (text and files, multipart, CSRF) for a Chief
  Executive, Medical Director or Service Lead of the Trust while the network waits for it;
  ``POST`` sends it through ``states.services.responses.submit`` (one transaction; a refused
  response, text or file stores nothing and the page says why) and goes back to the item.
- ``GET /risks/{id}/responses``: every response with its files and judgement, for anyone who
  may see the risk.
- ``GET /uploads/{id}``: the file, as an attachment, typed as its bytes were sniffed.

Who may see or send what is decided in states/: another Trust's risk or file is the same 404
as a missing one.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session
from starlette.datastructures import UploadFile

from models.types import MAX_ROW_ID
from states.errors import InvalidInput, MissingActor, NotFound, PeerwatchError, PermissionDenied, StaleVersion
from states.services import responses
from states.uploads import TEXT, check_size, max_upload_bytes
from states.views.uploads import get_upload
from web.deps import Who, engine_of, form, posted, who
from web.errors import one_line, status_of
from web.render import page, redirect
from web.routes.manage import summary_of

router = APIRouter(include_in_schema=False)  # pages, not the API: the OpenAPI document is /api/v1's

Me = Annotated[Who, Depends(who)]
TEXT_FIELD = "text"
FILES_FIELD = "files"
VERSION = "version"
FORM_SLACK = 1024 * 1024  # the form's other fields and multipart framing, beyond the files themselves


def _session(request: Request) -> Session:
    return Session(engine_of(request), expire_on_commit=False)


def _id(value: int) -> int:
    if not 0 < value <= MAX_ROW_ID:
        raise NotFound(f"{value} not found")
    return value


def _form_page(
    request: Request,
    me: Who,
    data: dict[str, Any],
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return page(
        request,
        "responses/respond.html",
        me,
        status_code=status_code,
        risk=data,
        values=values or {},
        errors=errors or {},
        summary=summary_of(errors, problem),
        max_size=max_upload_bytes(),
    )


@router.get("/risks/{risk_id}/respond", response_class=HTMLResponse)
def respond_form(request: Request, risk_id: int, me: Me) -> HTMLResponse:
    """The form for the Trust's formal response: its text and files."""
    with _session(request) as s:
        data = responses.respond_form(s, me.principal, _id(risk_id))
    return _form_page(request, me, data)


async def _files(request: Request, field: str, limit: int) -> tuple[list[tuple[str, bytes]], list[str]]:
    """The posted files (those with a name), each read no further than the limit allows; and
    the problems found from their sizes alone (nothing read of a file that is too large)."""
    sent = await posted(request)
    files: list[tuple[str, bytes]] = []
    problems: list[str] = []
    for value in sent.getlist(field):
        if not isinstance(value, UploadFile) or not value.filename:
            continue  # the empty file input of a form sent without files
        try:
            if value.size is not None:
                check_size(value.filename, value.size, limit)
            data = await value.read(limit + 1)
            check_size(value.filename, len(data), limit)
        except InvalidInput as exc:
            problems.append(one_line(str(exc)))
            continue
        finally:
            await value.close()
        files.append((value.filename, data))
    return files, problems


def _field_of(message: str, files: list[tuple[str, bytes]], names: list[str]) -> str:
    """Which field a refusal is about: the text, the files, or neither (the summary only)."""
    if message.startswith("the response"):
        return TEXT_FIELD
    if "file" in message or any(n and n in message for n in names) or any(f in message for f, _ in files):
        return FILES_FIELD
    return ""


@router.post("/risks/{risk_id}/respond", response_class=HTMLResponse)
async def respond(request: Request, risk_id: int, me: Me) -> Response:
    """Send the response; a refusal shows the form again with why, and nothing is stored."""
    risk_id = _id(risk_id)
    limit = max_upload_bytes()
    form_data = await posted(request)  # within the files and size a form may hold; kept by the request
    try:
        return await _respond(request, risk_id, me, limit)
    finally:
        await form_data.close()  # the spooled files, whatever happened


async def _respond(request: Request, risk_id: int, me: Who, limit: int) -> Response:
    fields = await form(request, me)  # the CSRF token checked
    with _session(request) as s:
        data = responses.respond_form(s, me.principal, risk_id)
    files, problems = await _files(request, FILES_FIELD, limit)
    sent = await posted(request)
    names = [v.filename or "" for v in sent.getlist(FILES_FIELD) if isinstance(v, UploadFile)]
    values = {TEXT_FIELD: fields.get(TEXT_FIELD, "")}
    if problems:
        return _form_page(request, me, data, values=values, errors={FILES_FIELD: "; ".join(problems)}, status_code=422)
    try:
        version = int(fields.get(VERSION, ""))
    except ValueError:
        raise InvalidInput("the form has no risk version: open the form again") from None
    try:
        responses.submit(
            engine_of(request), me.principal, risk_id, fields.get(TEXT_FIELD, ""), files, me.clock, version
        )
    except (NotFound, PermissionDenied, MissingActor):
        raise
    except StaleVersion as exc:
        with _session(request) as s:
            data = responses.respond_form(s, me.principal, risk_id)
        problem = f"Someone changed this risk since you opened the form: {one_line(str(exc))}. Check and send again"
        return _form_page(request, me, data, values=values, problem=problem, status_code=409)
    except PeerwatchError as exc:
        message = one_line(str(exc))
        field = _field_of(message, files, names)
        return _form_page(
            request,
            me,
            data,
            values=values,
            errors={field: message} if field else {},
            problem=None if field else message,
            status_code=status_of(exc),
        )
    return redirect(f"/items/risk/{risk_id}?done=submit_response")


@router.get("/risks/{risk_id}/responses", response_class=HTMLResponse)
def responses_list(request: Request, risk_id: int, me: Me) -> HTMLResponse:
    """The Trust's formal responses to a risk: text, who, when, files, judgement."""
    with _session(request) as s:
        data = responses.responses_page(s, me.principal, _id(risk_id))
    return page(request, "responses/list.html", me, **data)


def content_disposition(filename: str) -> str:
    """``attachment`` with the name twice (RFC 6266): a plain ASCII fallback, then the UTF-8
    name percent-encoded (RFC 5987), so no name can break out of the header."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;%' else "_" for c in filename) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get("/uploads/{upload_id}")
def download(request: Request, upload_id: int, me: Me) -> Response:
    """A file sent through the portal, to anyone who may see the item it is about."""
    with _session(request) as s:
        upload = get_upload(s, me.principal, _id(upload_id))
    media_type = f"{TEXT}; charset=utf-8" if upload.content_type == TEXT else upload.content_type
    return Response(
        content=upload.data,
        media_type=media_type,
        headers={
            "Content-Disposition": content_disposition(upload.filename),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )
