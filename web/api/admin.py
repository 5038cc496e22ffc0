"""/api/v1's administration of accounts (administrators; the pages are web/routes/admin.py): the
accounts, one account's grants and tokens, adding an account, granting and revoking a role with
its scope, disabling and re-enabling an account (states/services/accounts.py decides and audits
each). No token is created through the API (a token does not mint tokens): ``peerwatch token
create`` or the page /account/tokens. Nor is a password set through it: the page or ``peerwatch
user password``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from states.services import accounts, web_manage
from web.api.common import WRITE_REFUSALS, ApiWho, db
from web.api.models import MAX_ID
from web.api.models_people import GrantIn, NoteIn, RevokeIn, UserIn, UserOut, UsersOut

router = APIRouter()

UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="The account's id.")]


def _detail(request: Request, user_id: int) -> dict[str, Any]:
    with db(request) as s:
        return accounts.user_detail(s, str(user_id))


@router.get("/users", response_model=UsersOut, summary="Every account (administrators)")
def users(request: Request, who: ApiWho) -> dict[str, Any]:
    with db(request) as s:
        web_manage.require_administrator(who.principal, "list accounts")
        return {"users": accounts.users(s)}


@router.get("/users/{user_id}", response_model=UserOut, summary="One account: its grants and tokens (administrators)")
def user(request: Request, user_id: UserId, who: ApiWho) -> dict[str, Any]:
    web_manage.require_administrator(who.principal, "read accounts")
    return _detail(request, user_id)


@router.post("/users", response_model=UserOut, status_code=201, responses=WRITE_REFUSALS, summary="Add an account")
def add_user(request: Request, body: UserIn, who: ApiWho) -> dict[str, Any]:
    with db(request) as s:
        row = accounts.add_user(s, who.principal, who.clock, name=body.name, email=body.email, os_login=body.os_login)
        s.commit()
        new_id = row.id
    assert new_id is not None
    return _detail(request, new_id)


@router.post("/users/{user_id}/grants", response_model=UserOut, responses=WRITE_REFUSALS, summary="Grant a role")
def grant(request: Request, user_id: UserId, body: GrantIn, who: ApiWho) -> dict[str, Any]:
    with db(request) as s:
        accounts.grant(s, who.principal, who.clock, str(user_id), body.role, body.scope, body.scope_id)
        s.commit()
    return _detail(request, user_id)


@router.post(
    "/users/{user_id}/grants/revoke", response_model=UserOut, responses=WRITE_REFUSALS, summary="Revoke a grant"
)
def revoke(request: Request, user_id: UserId, body: RevokeIn, who: ApiWho) -> dict[str, Any]:
    with db(request) as s:
        accounts.revoke(s, who.principal, who.clock, body.grant, body.note, of=str(user_id))
        s.commit()
    return _detail(request, user_id)


@router.post(
    "/users/{user_id}/disable",
    response_model=UserOut,
    responses=WRITE_REFUSALS,
    summary="Disable an account (its sessions and tokens stop working)",
)
def disable(request: Request, user_id: UserId, who: ApiWho, body: NoteIn | None = None) -> dict[str, Any]:
    with db(request) as s:
        accounts.disable_user(s, who.principal, who.clock, str(user_id), body.note if body else None)
        s.commit()
    return _detail(request, user_id)


@router.post(
    "/users/{user_id}/enable",
    response_model=UserOut,
    responses=WRITE_REFUSALS,
    summary="Re-enable a disabled account (its old tokens stay revoked)",
)
def enable(request: Request, user_id: UserId, who: ApiWho, body: NoteIn | None = None) -> dict[str, Any]:
    with db(request) as s:
        accounts.enable_user(s, who.principal, who.clock, str(user_id), body.note if body else None)
        s.commit()
    return _detail(request, user_id)
