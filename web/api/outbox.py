"""/api/v1's outbox: the open incidents about items in my scope, retrying a letter (or every
failed one in my scopes) and settling one in doubt. states/services/outbox.py decides who may and
which letters, as for the outbox page (web/routes/outbox.py): a letter about another network's
item is the same 404 as a missing one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from models.tables import OutboxMessage, is_in_doubt
from notifications.dispatch import incidents
from states.services import outbox, web_manage
from web.api.common import WRITE_REFUSALS, ApiWho, NetworkWho, db
from web.api.models import MAX_ID, OutboxOut
from web.api.models_work import OutboxActed, SettleIn

router = APIRouter()

MessageId = Annotated[int, Path(ge=1, le=MAX_ID, description="The letter's id (an incident's id).")]


def _status(m: OutboxMessage) -> str:
    return "in doubt" if is_in_doubt(m) else str(m.status)


@router.get("/outbox", response_model=OutboxOut, summary="The outbox's open incidents about items in my scope")
def outbox_incidents(request: Request, who: ApiWho) -> dict[str, Any]:
    with db(request) as s:
        rows = web_manage.visible_outbox(s, who.principal, incidents(s, who.clock.now()))
        listed = [
            {
                "id": m.id,
                "status": _status(m),
                "template": m.template,
                "kind": m.kind,
                "item_id": m.item_id,
                "to": [p["email"] for p in m.to],
                "attempts": m.attempts,
                "error": m.last_error,
                "created_at": m.created_at,
            }
            for m in rows
        ]
        return {"incidents": listed, "may_act": web_manage.may_settle_outbox(who.principal)}


def _acted(rows: list[OutboxMessage]) -> OutboxActed:
    return OutboxActed.model_validate(
        {
            "letters": [
                {"id": m.id, "kind": m.kind, "item_id": m.item_id, "template": m.template, "status": _status(m)}
                for m in rows
            ]
        }
    )


@router.post(
    "/outbox/retry-failed",
    response_model=OutboxActed,
    responses=WRITE_REFUSALS,
    summary="Queue again every failed letter about items in my scopes",
)
def retry_failed(request: Request, who: NetworkWho) -> OutboxActed:
    with db(request) as s:
        rows = outbox.retry(s, [], all_failed=True, principal=who.principal, clock=who.clock)
        s.commit()
        return _acted(rows)


@router.post(
    "/outbox/{message_id}/retry",
    response_model=OutboxActed,
    responses=WRITE_REFUSALS,
    summary="Queue a failed or in-doubt letter again",
)
def retry(request: Request, message_id: MessageId, who: NetworkWho) -> OutboxActed:
    with db(request) as s:
        mid = web_manage.visible_message(s, who.principal, message_id)  # another network's: 404, as a missing one
        rows = outbox.retry(s, [mid], principal=who.principal, clock=who.clock)
        s.commit()
        return _acted(rows)


@router.post(
    "/outbox/{message_id}/settle",
    response_model=OutboxActed,
    responses=WRITE_REFUSALS,
    summary="Settle a letter in doubt: hold, resend or delivered",
)
def settle(request: Request, message_id: MessageId, body: SettleIn, who: NetworkWho) -> OutboxActed:
    with db(request) as s:
        mid = web_manage.visible_message(s, who.principal, message_id)  # another network's: 404, as a missing one
        rows = outbox.settle_in_doubt(s, [mid], body.action, principal=who.principal, clock=who.clock)
        s.commit()
        return _acted(rows)
