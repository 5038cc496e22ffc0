"""The JSON API under ``/api/v1``: the use cases the pages offer, for scripts and other systems.

Authenticated by a personal access token (``Authorization: Bearer pw_...``, ``peerwatch token
create``) acting as its owner with the owner's grants now (``web.deps.api_who``); no cookies, so
no CSRF. Every rule is the use case's or the view's: this module parses, calls and shapes (the
shapes are web/api_models.py). Every refusal is a 4xx JSON body ``{"error": "<one line>"}``
(web/errors.py): 401 no or bad token, 403 not allowed, 404 not found (or another network's item:
the same answer), 409 a stale version, 422 invalid input, 400 a step its rules refuse now.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Security
from fastapi.security import HTTPBearer
from sqlmodel import Session

from models.tables import is_in_doubt
from notifications.dispatch import incidents
from states.errors import InvalidInput
from states.services import acting, intake, web_manage
from states.services.items import deadline_json
from states.views import work
from web.api_models import (
    MAX_ID,
    NAME,
    TEXT,
    ApiError,
    CreatedOut,
    FireIn,
    FireOut,
    GrantOut,
    ItemList,
    ItemOut,
    Kind,
    MeOut,
    OutboxOut,
    RiskIn,
    WorkOut,
)
from web.deps import Who, api_who, engine_of

REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"model": ApiError, "description": "The request could not be read, or the step's rules refuse it now."},
    401: {"model": ApiError, "description": "No token, or an unknown, revoked or expired one."},
    403: {"model": ApiError, "description": "The token's owner may not do this."},
    404: {"model": ApiError, "description": "No such item, or not one this account may see."},
    422: {"model": ApiError, "description": "Invalid input."},
}
WRITE_REFUSALS: dict[int | str, dict[str, Any]] = {
    **REFUSALS,
    409: {"model": ApiError, "description": "The item changed since the version given."},
}

# Declares the scheme in the OpenAPI (the check is api_who's: a 401 with one line, never FastAPI's own).
BEARER = HTTPBearer(
    auto_error=False, scheme_name="token", description="A personal access token (pw_...): peerwatch token create"
)


def known_query(request: Request) -> None:
    """A query parameter the operation does not take is refused (a misspelt filter would
    otherwise be ignored and answer with everything)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    known = {q.alias for q in dependant.query_params} if dependant is not None else set()
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise InvalidInput(f"unknown query parameter {unknown[0][:50]!r}: this operation takes {takes}")


router = APIRouter(
    prefix="/api/v1",
    tags=["api"],
    responses=REFUSALS,
    dependencies=[Security(BEARER), Depends(api_who), Depends(known_query)],  # the token first
)

ItemId = Annotated[int, Path(ge=1, le=MAX_ID, description="The item's id.")]
ApiWho = Annotated[Who, Depends(api_who)]


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


# ---------------------------------------------------------------- raising a risk


@router.post(
    "/risks", response_model=CreatedOut, status_code=201, responses=WRITE_REFUSALS, summary="Raise a risk or concern"
)
def raise_risk(request: Request, body: RiskIn, who: ApiWho) -> CreatedOut:
    principal = who.principal.acting_as(body.role)
    with Session(engine_of(request), expire_on_commit=False) as s:
        out = intake.raise_risk(
            s,
            service=body.service,
            level=body.level,
            title=body.title,
            standard=body.standard,
            visit_date=body.visit_date,
            identified=body.identified,
            impact=body.impact,
            likelihood=body.likelihood,
            doctors_in_training=body.doctors_in_training,
            principal=principal,
            clock=who.clock,
            note=body.note,
        )
        row: Any = out.row
        deadlines = deadline_json(s, "risk", row.id)
        s.commit()
        return CreatedOut.model_validate(
            {"id": row.id, "kind": "risk", "state": row.state, "version": row.version, "deadlines": deadlines}
        )


# ---------------------------------------------------------------- the outbox


@router.get("/outbox", response_model=OutboxOut, summary="The outbox's open incidents about items in my scope")
def outbox(request: Request, who: ApiWho) -> dict[str, Any]:
    with Session(engine_of(request)) as s:
        rows = web_manage.visible_outbox(s, who.principal, incidents(s, who.clock.now()))
        listed = [
            {
                "id": m.id,
                "status": "in doubt" if is_in_doubt(m) else str(m.status),
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
