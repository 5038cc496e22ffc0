"""The items: a kind's list (``/items/{kind}``), one item's page, its letters as sent, and acting
on it (``/items/{kind}/{id}/act/{trigger}``: the form; a POST checks the answers first for the
irreversible steps, then fires through ``states.services.acting.fire`` and goes back to the item).

Who may see or fire what is decided in states/ (views and the engine through the use case): an
item of another network is the same 404 as a missing one; a refusal is the engine's, recorded
and shown with its reason. The item's version travels with the form: if someone changed the item
since, the page says what they did and offers the form again at the new version.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from models.tables import OutboxMessage
from notifications.render import rendered
from states.clock import parse_date
from states.errors import InvalidInput, MissingActor, NotFound, PeerwatchError, PermissionDenied, StaleVersion
from states.machines.spec import get_spec
from states.services import acting
from states.views import forms, work
from states.views import item as item_view
from web.deps import Who, engine_of, form, who
from web.errors import one_line, status_of
from web.render import page, redirect
from web.routes.manage import disposition, download_type, path_id, summary_of

router = APIRouter()
log = logging.getLogger("peerwatch.web")

Me = Annotated[Who, Depends(who)]
PER_PAGE = 25
MAX_PAGE = 100_000
VERSION = "version"
CONFIRMED = "confirmed"
EDIT = "edit"


def _session(request: Request) -> Session:
    return Session(engine_of(request), expire_on_commit=False)


def _flag(value: str) -> bool:
    return value in ("1", "true", "yes", "on")


@router.get("/items/{kind}", response_class=HTMLResponse)
def item_list(
    request: Request,
    kind: str,
    me: Me,
    state: Annotated[str, Query(max_length=60)] = "",
    network: Annotated[str, Query(max_length=40)] = "",
    service: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    due_before: Annotated[str, Query(max_length=20)] = "",
    overdue: Annotated[str, Query(max_length=8)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    page_no: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
) -> HTMLResponse:
    """One kind's items, filtered, searched and a page at a time."""
    spec = get_spec(kind)  # an unknown kind is a 404
    before = parse_date(due_before, "due before date") if due_before.strip() else None
    with _session(request) as s:
        data = work.list_items(
            s,
            me.principal,
            kind,
            state=state or None,
            network=network or None,
            service=service,
            due_before=before,
            overdue=_flag(overdue),
            q=q or None,
            page=page_no,
            per_page=PER_PAGE,
            clock=me.clock,
        )
    filters = {
        "state": state,
        "network": network,
        "service": "" if service is None else str(service),
        "due_before": due_before,
        "overdue": "1" if _flag(overdue) else "",
        "q": q,
    }
    kept = {k: v for k, v in filters.items() if v}

    def at(n: int) -> str:
        return f"/items/{kind}?" + urlencode({**kept, "page": n})

    return page(
        request,
        "items/list.html",
        me,
        kind=kind,
        describe=spec.describe,
        data=data,
        filters=filters,
        previous=at(page_no - 1) if page_no > 1 else None,
        next=at(page_no + 1) if page_no < data["pages"] else None,
    )


DONE_FLAGS = ("done", "proposed")


@router.get("/items/{kind}/{item_id}", response_class=HTMLResponse)
def item(
    request: Request,
    kind: str,
    item_id: int,
    me: Me,
    done: Annotated[str, Query(max_length=60)] = "",
    proposed: Annotated[str, Query(max_length=60)] = "",
) -> HTMLResponse:
    """One item: its summary, state among its machine's states, deadlines, history, letters,
    related items and what I may do now."""
    with _session(request) as s:
        data = work.item_page(s, me.principal, kind, item_id, me.clock)
    spec = get_spec(kind)
    banner = None
    last = data["history"][-1] if data["history"] else {}
    if last.get("user_id") != me.principal.user_id:  # the banner tells what I just did, not a link's say-so
        done = proposed = ""
    if done in spec.triggers() and last.get("trigger") == done:
        banner = f"{forms.label(done)}: done. The {kind} is now {data['state'].replace('_', ' ')}."
    elif proposed in spec.triggers():
        banner = f"{forms.label(proposed)}: proposed. A second person must confirm it with the same answers."
    return page(request, "items/item.html", me, item=data, banner=banner)


@router.get("/items/{kind}/{item_id}/letters/{message_id}/attachments/{index}")
def attachment(request: Request, kind: str, item_id: str, message_id: str, index: str, me: Me) -> Response:
    """One file a letter carried, as it was sent, to whoever may read the letter: downloaded,
    never shown inline (so a file is never run as a page of this site)."""
    get_spec(kind)  # an unknown kind is a 404
    with _session(request) as s:
        found = item_view.letter_attachment(
            s, me.principal, kind, path_id(item_id), path_id(message_id), path_id(index)
        )
    return Response(
        content=found["data"],
        media_type=download_type(found["content_type"]),
        headers={
            "Content-Disposition": disposition(found["filename"]),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@router.get("/items/{kind}/{item_id}/letters/{message_id}", response_class=HTMLResponse)
def letter(request: Request, kind: str, item_id: int, message_id: int, me: Me) -> HTMLResponse:
    """A letter about the item as it was sent: its headers and its text, escaped."""
    preview = None
    with _session(request) as s:
        data = work.letter(s, me.principal, kind, item_id, message_id)
        row = s.get(OutboxMessage, message_id)
        if not data["sent"] and row is not None:
            try:  # not sent yet: as it will be sent, written now from its stored content
                preview = rendered(row)
            except Exception:  # a letter that cannot be written now is the dispatcher's incident, not this page's
                log.warning("letter %s cannot be previewed", message_id, exc_info=True)
    return page(request, "items/letter.html", me, letter=data, preview=preview)


def _form_of(s: Session, me: Who, kind: str, item_id: int, trigger: str) -> tuple[Any, dict[str, Any] | None]:
    """The visible row and the form of ``trigger`` this person may use now (None if none)."""
    row = work.get_visible(s, me.principal, kind, item_id)
    if trigger not in get_spec(kind).triggers():
        raise NotFound(f"{kind} has no step {trigger!r}")
    return row, forms.find(forms.trigger_forms(s, me.principal, kind, row, me.clock), trigger)


def _act_page(
    request: Request,
    me: Who,
    kind: str,
    row: Any,
    f: dict[str, Any],
    *,
    values: Mapping[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: str | None = None,
    changes: list[dict[str, Any]] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return page(
        request,
        "items/act.html",
        me,
        status_code=status_code,
        kind=kind,
        item_id=row.id,
        ref=work.ref(kind, row.id, getattr(row, "level", None)),
        state=row.state,
        version=row.version,
        form=f,
        values=dict(values if values is not None else forms.proposal_values(f)),
        errors=errors or {},
        summary=summary_of(errors, problem),
        changes=changes or [],
    )


@router.get("/items/{kind}/{item_id}/act/{trigger}", response_class=HTMLResponse)
def act_form(request: Request, kind: str, item_id: int, trigger: str, me: Me) -> HTMLResponse:
    """The form for one step: typed fields, the note when one is needed, the item's version."""
    with _session(request) as s:
        row, f = _form_of(s, me, kind, item_id, trigger)
        if f is None:
            raise PermissionDenied(
                f"{forms.label(trigger).lower()} is not something you may do on this {kind} now "
                f"(it is {row.state.replace('_', ' ')})"
            )
        return _act_page(request, me, kind, row, f)


def _field_of(message: str, f: dict[str, Any]) -> str:
    """The field a refusal names, if it names one (for the error message beside it)."""
    for field in f["fields"]:
        if field["name"] in message:
            return str(field["name"])
    return ""


@router.post("/items/{kind}/{item_id}/act/{trigger}", response_class=HTMLResponse)
async def act(request: Request, kind: str, item_id: int, trigger: str, me: Me) -> Response:
    """Check the answers; for an irreversible step show them to check first; then fire."""
    posted = await form(request, me)
    with _session(request) as s:
        row, f = _form_of(s, me, kind, item_id, trigger)
    try:
        version = int(posted.get(VERSION, ""))
    except ValueError:
        raise InvalidInput("the form has no item version: open the form again") from None
    if f is None:  # not offered: the engine refuses it, records the attempt and says why
        acting.fire(
            engine_of(request),
            me.principal,
            me.clock,
            kind,
            item_id,
            trigger,
            note=(posted.get(forms.NOTE) or "").strip() or None,
            params={},
            version=version,
        )
        return redirect(f"/items/{kind}/{item_id}?done={trigger}")
    params, note, errors = forms.read(f, posted)
    if errors or _flag(posted.get(EDIT, "")):
        return _act_page(request, me, kind, row, f, values=posted, errors=errors, status_code=400 if errors else 200)
    if f["confirm"] and not _flag(posted.get(CONFIRMED, "")):
        return page(
            request,
            "items/check.html",
            me,
            kind=kind,
            item_id=item_id,
            ref=work.ref(kind, item_id, getattr(row, "level", None)),
            form=f,
            answers=forms.answers(f, params),
            hidden=forms.hidden(f, params),
            note=note,
            version=version,
        )
    try:
        result = acting.fire(
            engine_of(request),
            me.principal,
            me.clock,
            kind,
            item_id,
            trigger,
            note=note,
            params=params,
            version=version,
        )
    except StaleVersion as exc:
        with _session(request) as s:
            row, fresh = _form_of(s, me, kind, item_id, trigger)
            changes = acting.changes_since(s, kind, item_id, version)
        problem = f"Someone changed this {kind} since you opened the form: {one_line(str(exc))}"
        if fresh is None:
            raise StaleVersion(problem + ". You may no longer do this step") from None
        return _act_page(
            request, me, kind, row, fresh, values=posted, problem=problem, changes=changes, status_code=409
        )
    except (NotFound, PermissionDenied, MissingActor):
        raise
    except PeerwatchError as exc:
        message = one_line(str(exc))
        field = _field_of(message, f)
        errors = {field: message} if field else {}
        return _act_page(
            request,
            me,
            kind,
            row,
            f,
            values=posted,
            errors=errors,
            problem=None if field else message,
            status_code=status_of(exc),
        )
    flag = "proposed" if result["proposed"] else "done"
    return redirect(f"/items/{kind}/{item_id}?{flag}={trigger}")
