"""/api/v1: who the token is, my work, the lists, an item and firing its triggers."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlmodel import Session

from states.services import acting
from states.views import work
from web.api.common import WRITE_REFUSALS, ApiWho, ItemId
from web.api.models import MAX_ID, NAME, TEXT, FireIn, FireOut, GrantOut, ItemList, ItemOut, Kind, MeOut, WorkOut
from web.deps import engine_of

router = APIRouter()


# ---------------------------------------------------------------- me


@router.get("/me", response_model=MeOut, summary="The token's owner and their grants now")
def me(who: ApiWho) -> MeOut:
    p = who.principal
    return MeOut(
        id=p.user_id,
        name=p.name,
        via=p.via,
        roles=p.roles(),
        grants=[GrantOut(role=g.role, scope=g.scope, scope_id=g.scope_id) for g in p.grants],
        training=who.training,
    )


# ---------------------------------------------------------------- my work


@router.get("/work", response_model=WorkOut, summary="My work: open deadlines, proposals, incidents")
def my_work(
    request: Request,
    who: ApiWho,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> dict[str, Any]:
    with Session(engine_of(request)) as s:
        return work.my_work(s, who.principal, who.clock, limit=limit, offset=offset)


# ---------------------------------------------------------------- lists and items


@router.get("/items/{kind}", response_model=ItemList, summary="Items of a kind, filtered, a page at a time")
def list_items(
    request: Request,
    kind: Kind,
    who: ApiWho,
    state: Annotated[str | None, Query(max_length=100, pattern=NAME)] = None,
    network: Annotated[str | None, Query(max_length=100, pattern=TEXT, description="A network's code.")] = None,
    service: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    due_before: Annotated[date | None, Query()] = None,
    overdue: Annotated[bool, Query()] = False,
    q: Annotated[str | None, Query(max_length=200, pattern=TEXT, description="Search the reference and title.")] = None,
    page: Annotated[int, Query(ge=1, le=10**6)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    with Session(engine_of(request)) as s:
        return work.list_items(
            s,
            who.principal,
            kind.value,
            state=state,
            network=network,
            service=service,
            due_before=due_before,
            overdue=overdue,
            q=q,
            page=page,
            per_page=per_page,
            clock=who.clock,
        )


@router.get("/items/{kind}/{item_id}", response_model=ItemOut, summary="One item: state, deadlines, history, triggers")
def item(request: Request, kind: Kind, item_id: ItemId, who: ApiWho) -> dict[str, Any]:
    with Session(engine_of(request)) as s:
        return work.item_page(s, who.principal, kind.value, item_id, who.clock)


@router.post(
    "/items/{kind}/{item_id}/fire",
    response_model=FireOut,
    response_model_by_alias=True,
    responses=WRITE_REFUSALS,
    summary="Fire a trigger on an item",
)
def fire(request: Request, body: FireIn, kind: Kind, item_id: ItemId, who: ApiWho) -> dict[str, Any]:
    principal = who.principal.acting_as(body.role)
    db = engine_of(request)
    with Session(db) as s:
        work.get_visible(s, principal, kind.value, item_id)  # another network's item: 404, as a missing one
    return acting.fire(
        db,
        principal,
        who.clock,
        kind.value,
        item_id,
        body.trigger,
        note=body.note,
        params=body.params,
        version=body.version,
    )
