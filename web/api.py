"""The JSON API under ``/api/v1``: the use cases the pages offer, for scripts and other systems.

Authenticated by a personal access token (``Authorization: Bearer pw_...``, ``peerwatch token
create``) acting as its owner with the owner's grants now (``web.deps.api_who``); no cookies, so
no CSRF. Every rule is the use case's or the view's: this module parses, calls and shapes.
Every refusal is a 4xx JSON body ``{"error": "<one line>"}`` (web/errors.py): 401 no or bad
token, 403 not allowed, 404 not found (or another network's item: the same answer), 409 a
stale version, 422 invalid input.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from states.machines.spec import kinds
from states.services import acting, intake
from states.services.items import deadline_json
from states.views import work
from web.deps import Who, api_who, engine_of

MAX_ID = 2**63 - 1
Kind = enum.Enum("Kind", {k: k for k in kinds()}, type=str)  # type: ignore[misc]
"""The kinds of item (a wrong kind is a 422 by the schema)."""


class ApiError(BaseModel):
    """Every refusal: one line saying why."""

    error: str = Field(description="One line: why the request was refused (nothing was changed).")


REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"model": ApiError, "description": "The request could not be read."},
    401: {"model": ApiError, "description": "No token, or an unknown, revoked or expired one."},
    403: {"model": ApiError, "description": "The token's owner may not do this."},
    404: {"model": ApiError, "description": "No such item, or not one this account may see."},
    422: {"model": ApiError, "description": "Invalid input."},
}
WRITE_REFUSALS: dict[int | str, dict[str, Any]] = {
    **REFUSALS,
    409: {"model": ApiError, "description": "The item changed since the version given."},
}

router = APIRouter(prefix="/api/v1", tags=["api"], responses=REFUSALS)

ItemId = Annotated[int, Path(ge=1, le=MAX_ID, description="The item's id.")]
ApiWho = Annotated[Who, Depends(api_who)]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- me


class GrantOut(_Out):
    role: str
    scope: str = Field(description="installation, network, organisation or service")
    scope_id: int | None


class MeOut(_Out):
    id: int
    name: str
    via: str
    roles: list[str]
    grants: list[GrantOut]
    training: bool = Field(description="This is a training database (simulated dates; letters never sent).")


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


class WorkOut(_Out):
    model_config = ConfigDict(extra="allow")

    deadlines: list[dict[str, Any]]
    proposals: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


@router.get("/work", response_model=WorkOut, summary="My work: open deadlines, proposals, incidents")
def my_work(
    request: Request,
    who: ApiWho,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> dict[str, Any]:
    with Session(engine_of(request)) as s:
        out = work.my_work(s, who.principal, who.clock, limit=limit, offset=offset)
    return {**out, "limit": limit, "offset": offset}


# ---------------------------------------------------------------- lists and items


class ItemList(_Out):
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int


@router.get("/items/{kind}", response_model=ItemList, summary="Items of a kind, filtered, a page at a time")
def list_items(
    request: Request,
    kind: Kind,
    who: ApiWho,
    state: Annotated[str | None, Query(max_length=100)] = None,
    network: Annotated[str | None, Query(max_length=100, description="A network's code.")] = None,
    service: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    due_before: Annotated[date | None, Query()] = None,
    overdue: Annotated[bool, Query()] = False,
    q: Annotated[str | None, Query(max_length=200, description="Search the reference and title.")] = None,
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
        )


class ItemOut(_Out):
    model_config = ConfigDict(extra="allow")

    kind: str
    id: int
    state: str
    version: int
    deadlines: list[dict[str, Any]]
    history: list[dict[str, Any]]
    triggers: list[dict[str, Any]]


@router.get("/items/{kind}/{item_id}", response_model=ItemOut, summary="One item: state, deadlines, history, triggers")
def item(request: Request, kind: Kind, item_id: ItemId, who: ApiWho) -> dict[str, Any]:
    with Session(engine_of(request)) as s:
        page = work.item_page(s, who.principal, kind.value, item_id, who.clock)
    return {"kind": kind.value, "id": item_id, **page}


class FireIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trigger: str = Field(min_length=1, max_length=100, description="The trigger (see the item's triggers).")
    note: str | None = Field(None, max_length=10_000, description="A reason or note (some triggers need one).")
    params: dict[str, str] | None = Field(None, description='The trigger\'s parameters, e.g. {"days": "5"}.')
    version: int | None = Field(None, ge=1, le=MAX_ID, description="Refuse (409) unless the item is at this version.")
    role: str | None = Field(None, max_length=100, description="Which of my roles to act in, when more than one fits.")


class FireOut(_Out):
    model_config = ConfigDict(extra="allow")

    id: int
    kind: str
    trigger: str
    from_: str = Field(alias="from")
    state: str
    version: int
    letters_queued: int
    proposed: bool
    deadlines: list[dict[str, Any]]


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


class RiskIn(BaseModel):
    """The fields of ``peerwatch risk raise``."""

    model_config = ConfigDict(extra="forbid")

    service: int = Field(ge=1, le=MAX_ID, description="The service's id.")
    level: Literal["IR", "SC", "GC"]
    title: str = Field(min_length=1, max_length=500, description="What was found.")
    standard: str | None = Field(None, max_length=100, description="A standard's reference, e.g. T-12.")
    visit_date: date | None = Field(None, description="The visit where it was found.")
    identified: date | None = Field(None, description="The day it was found, if not at a visit.")
    impact: int | None = Field(None, ge=1, le=6)
    likelihood: int | None = Field(None, ge=1, le=6)
    doctors_in_training: bool = False
    note: str | None = Field(None, max_length=10_000)
    role: str | None = Field(None, max_length=100)


class CreatedOut(_Out):
    id: int
    kind: str
    state: str
    version: int
    deadlines: list[dict[str, Any]]


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
        return CreatedOut(id=row.id, kind="risk", state=row.state, version=row.version, deadlines=deadlines)


# ---------------------------------------------------------------- the outbox


class OutboxOut(_Out):
    incidents: list[dict[str, Any]]
    at: datetime


@router.get("/outbox", response_model=OutboxOut, summary="The outbox's open incidents I can act on")
def outbox(request: Request, who: ApiWho) -> dict[str, Any]:
    with Session(engine_of(request)) as s:
        out = work.my_work(s, who.principal, who.clock, limit=1, offset=0)
    return {"incidents": out["incidents"], "at": who.clock.now()}
