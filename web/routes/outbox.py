"""The outbox's incidents and the operator's word on them (``/outbox``): failed, undeliverable
and interrupted or in-doubt letters about items in the person's scope, with retry and settle.
states/services/outbox.py decides who may, which letters may be retried, and what the page
lists (bounded, whatever the size of the outbox); the page shows its refusals."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from states.errors import PeerwatchError
from states.services import outbox, web_manage
from states.services.web_manage import step
from web.deps import Who, form
from web.render import page, redirect
from web.routes.manage import StaffMe, db, errors_of, path_id, status_of

router = APIRouter(include_in_schema=False)  # pages, not the API: the OpenAPI document is /api/v1's

DONE = {
    "retried": "Queued again: it goes on the next dispatch.",
    "hold": "Held: it is not resent until someone retries it.",
    "resend": "It will be resent on the next dispatch, with the same Message-ID.",
    "delivered": "Marked delivered: it is never resent.",
}
# The banner shows only when the person's own last audited step is the one named (not a link's say-so).
STEPS = {"retried": step("outbox", "retry"), **{a: step("outbox", f"in_doubt_{a}") for a in outbox.SETTLE_ACTIONS}}
STATUSES = ["queued", "sending", "sent", "failed", "undeliverable"]


def _page(request: Request, me: Who, status: str | None, errors: list[dict[str, Any]], code: int = 200) -> HTMLResponse:
    with db(request) as s:
        data = outbox.page(s, me.principal, me.clock, status)
        done = web_manage.just_done(s, me.principal, request.query_params.get("done", ""), STEPS)
    return page(
        request,
        "outbox/index.html",
        me,
        status_code=code,
        **data,
        status=status or "",
        statuses=STATUSES,
        shown=outbox.ROWS_SHOWN,
        done=DONE.get(done, ""),
        errors=errors,
    )


@router.get("/outbox", response_class=HTMLResponse)
def outbox_page(request: Request, me: StaffMe, status: str | None = None) -> HTMLResponse:
    return _page(request, me, status or None, [])


@router.post("/outbox/{message_id}/retry")
async def outbox_retry(request: Request, message_id: str, me: StaffMe) -> Response:
    await form(request, me)
    try:
        with db(request) as s:
            mid = web_manage.visible_message(s, me.principal, path_id(message_id))
            outbox.retry(s, [mid], principal=me.principal, clock=me.clock)
            s.commit()
    except PeerwatchError as exc:
        return _page(request, me, None, errors_of(exc), status_of(exc))
    return redirect("/outbox?done=retried")


@router.post("/outbox/retry-failed")
async def outbox_retry_failed(request: Request, me: StaffMe) -> Response:
    await form(request, me)
    try:
        with db(request) as s:
            outbox.retry(s, [], all_failed=True, principal=me.principal, clock=me.clock)
            s.commit()
    except PeerwatchError as exc:
        return _page(request, me, None, errors_of(exc), status_of(exc))
    return redirect("/outbox?done=retried")


@router.post("/outbox/{message_id}/settle")
async def outbox_settle(request: Request, message_id: str, me: StaffMe) -> Response:
    fields = await form(request, me)
    action = (fields.get("action") or "").strip()
    try:
        with db(request) as s:
            mid = web_manage.visible_message(s, me.principal, path_id(message_id))
            outbox.settle_in_doubt(s, [mid], action, principal=me.principal, clock=me.clock)
            s.commit()
    except PeerwatchError as exc:
        return _page(request, me, None, errors_of(exc, "action"), status_of(exc))
    return redirect(f"/outbox?done={action}")
