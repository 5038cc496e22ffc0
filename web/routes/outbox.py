"""The outbox's incidents and the operator's word on them (``/outbox``): failed, undeliverable
and interrupted or in-doubt letters about items in the person's scope, with retry and settle
(states/services/outbox.py decides who may and which letters; the page shows its refusals)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from models.tables import OutboxMessage, is_in_doubt
from notifications.dispatch import incidents
from states.clock import show
from states.errors import NotFound, PeerwatchError
from states.services import outbox, web_manage
from states.views.outbox import check_status, message, messages
from web.deps import Who, form
from web.render import page, redirect
from web.routes.manage import StaffMe, db, errors_of, path_id, status_of

router = APIRouter(include_in_schema=False)  # pages, not the API: the OpenAPI document is /api/v1's

ROWS_SHOWN = 200
DONE = {
    "retried": "Queued again: it goes on the next dispatch.",
    "hold": "Held: it is not resent until someone retries it.",
    "resend": "It will be resent on the next dispatch, with the same Message-ID.",
    "delivered": "Marked delivered: it is never resent.",
}


def _row(m: OutboxMessage) -> dict[str, Any]:
    return {
        "id": m.id,
        "status": "in doubt" if is_in_doubt(m) else str(m.status),
        "in_doubt": is_in_doubt(m),
        "retryable": is_in_doubt(m) or str(m.status) in ("failed", "sending"),
        "template": m.template,
        "kind": m.kind,
        "item_id": m.item_id,
        "to": ", ".join(p["email"] for p in m.to),
        "attempts": m.attempts,
        "next_try": show(m.next_attempt_at) if str(m.status) in ("queued", "failed") else "",
        "error": m.last_error or "",
    }


def _page(request: Request, me: Who, status: str | None, errors: list[dict[str, Any]], code: int = 200) -> HTMLResponse:
    with db(request) as s:
        check_status(status)
        now = me.clock.now()
        open_incidents = web_manage.visible_outbox(s, me.principal, incidents(s, now))
        queued = web_manage.visible_outbox(s, me.principal, messages(s, "queued"))
        listed = web_manage.visible_outbox(s, me.principal, messages(s, status)) if status else []
        counts = {
            "failed": sum(1 for m in open_incidents if str(m.status) == "failed"),
            "undeliverable": sum(1 for m in open_incidents if str(m.status) == "undeliverable"),
            "in_doubt": sum(1 for m in open_incidents if is_in_doubt(m)),
            "interrupted": sum(1 for m in open_incidents if str(m.status) == "sending" and not is_in_doubt(m)),
            "queued": len(queued),
        }
        rows = [_row(m) for m in open_incidents[:ROWS_SHOWN]]
        others = [_row(m) for m in listed[:ROWS_SHOWN]]
        may_act = web_manage.may_settle_outbox(me.principal)
    done = request.query_params.get("done", "")
    return page(
        request,
        "outbox/index.html",
        me,
        status_code=code,
        counts=counts,
        incidents=rows,
        more=len(open_incidents) > ROWS_SHOWN,
        status=status or "",
        listed=others,
        statuses=["queued", "sending", "sent", "failed", "undeliverable"],
        may_act=may_act,
        done=DONE.get(done, ""),
        errors=errors,
    )


@router.get("/outbox", response_class=HTMLResponse)
def outbox_page(request: Request, me: StaffMe, status: str | None = None) -> HTMLResponse:
    return _page(request, me, status or None, [])


def _visible(s: Any, me: Who, message_id: str) -> int:
    """The message's id if it is about an item in the person's scope; NotFound otherwise (the
    same whether it does not exist or is another network's: no existence leaks)."""
    mid = path_id(message_id)
    if not web_manage.visible_outbox(s, me.principal, [message(s, mid)]):
        raise NotFound(f"outbox message {mid} not found (peerwatch outbox list)")
    return mid


@router.post("/outbox/{message_id}/retry")
async def outbox_retry(request: Request, message_id: str, me: StaffMe) -> Response:
    await form(request, me)
    try:
        with db(request) as s:
            outbox.retry(s, [_visible(s, me, message_id)], principal=me.principal, clock=me.clock)
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
            outbox.settle_in_doubt(s, [_visible(s, me, message_id)], action, principal=me.principal, clock=me.clock)
            s.commit()
    except PeerwatchError as exc:
        return _page(request, me, None, errors_of(exc, "action"), status_of(exc))
    return redirect(f"/outbox?done={action}")
