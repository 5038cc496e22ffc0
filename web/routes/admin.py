"""Administrators' pages (``/admin/users...``): accounts, their grants with scope, disabling and
re-enabling an account, setting its password, linking or unlinking its single sign-on identity;
and everyone's own tokens (``/account/tokens``): an API token or a calendar feed token, shown
once, revocable. The use cases (states/services/accounts.py, signin.py, web_manage.py) decide
and refuse; each change is audited there. A handler parses, calls, renders."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, select

from models.tables import Network, Organisation, Service
from states.errors import InvalidInput, PeerwatchError
from states.principal import SCOPES
from states.roles import GRANTABLE_ROLES
from states.services import accounts, signin, web_manage
from states.services.web_manage import step
from web.deps import Who, form, settings_of
from web.render import page, redirect
from web.routes.manage import Me, db, errors_of, need, opt, opt_int, path_id, status_of

router = APIRouter(include_in_schema=False)  # pages, not the API: the OpenAPI document is /api/v1's

DONE = {
    "added": "Account added: grant it a role and set its password (or link its single sign-on identity).",
    "granted": "Role granted.",
    "revoked": "Grant revoked.",
    "disabled": "Account disabled: its sessions and tokens no longer work.",
    "enabled": "Account re-enabled: it may sign in again. Its old tokens stay revoked.",
    "password": "Password set: the account's other sessions have ended.",
    "sso-linked": "Single sign-on identity linked: the person signs in with it.",
    "sso-unlinked": "Single sign-on identity unlinked: it no longer signs in to this account.",
    "token-revoked": "Token revoked: it stops working at once.",
}
# A banner shows only when the person's own last audited step is the one named (not a link's say-so).
STEPS = {
    "added": step("account", "add"),
    "granted": step("account", "grant"),
    "revoked": step("account", "revoke"),
    "disabled": step("account", "disable"),
    "enabled": step("account", "enable"),
    "password": step("account", "password_set"),
    "sso-linked": step("account", "sso_linked"),
    "sso-unlinked": step("account", "sso_unlinked"),
    "token-revoked": step("token", "revoke"),
}
ACTIONS = {  # the form's action -> what the banner says was done
    "grant": "granted",
    "revoke": "revoked",
    "disable": "disabled",
    "enable": "enabled",
    "password": "password",
    "sso-link": "sso-linked",
    "sso-unlink": "sso-unlinked",
}


def _done(s: Session, request: Request, me: Who, item_id: int | None = None) -> str:
    return DONE.get(web_manage.just_done(s, me.principal, request.query_params.get("done", ""), STEPS, item_id), "")


def _users_page(request: Request, me: Who) -> HTMLResponse:
    with db(request) as s:
        web_manage.require_administrator(me.principal, "list accounts")
        rows = accounts.users(s)
        done = _done(s, request, me)
    return page(request, "admin/users.html", me, rows=rows, done=done)


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, me: Me) -> HTMLResponse:
    return _users_page(request, me)


def _new_page(
    request: Request, me: Who, values: dict[str, str], errors: list[dict[str, Any]], code: int = 200
) -> HTMLResponse:
    web_manage.require_administrator(me.principal, "add accounts")
    return page(request, "admin/new_user.html", me, status_code=code, values=values, errors=errors)


@router.get("/admin/users/new", response_class=HTMLResponse)
def new_user_page(request: Request, me: Me) -> HTMLResponse:
    return _new_page(request, me, {}, [])


@router.post("/admin/users/new")
async def new_user(request: Request, me: Me) -> Response:
    fields = await form(request, me)
    try:
        with db(request) as s:
            user = accounts.add_user(
                s,
                me.principal,
                me.clock,
                name=need(fields, "name", "the person's name"),
                email=need(fields, "email", "their email address"),
                os_login=opt(fields, "os_login"),
            )
            s.commit()
            new_id = user.id
    except PeerwatchError as exc:
        return _new_page(request, me, fields, errors_of(exc, "name"), status_of(exc))
    return redirect(f"/admin/users/{new_id}?done=added")


def _scope_names(s: Any) -> dict[str, dict[int, str]]:
    return {
        "network": {n.id: f"{n.name} ({n.code})" for n in s.exec(select(Network))},
        "organisation": {o.id: o.name for o in s.exec(select(Organisation))},
        "service": {v.id: v.name for v in s.exec(select(Service))},
    }


def _user_page(
    request: Request,
    me: Who,
    user_id: str,
    errors: list[dict[str, Any]],
    code: int = 200,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    uid = path_id(user_id)
    with db(request) as s:
        web_manage.require_administrator(me.principal, "read accounts")
        user = accounts.user_detail(s, str(uid))
        names = _scope_names(s)
        done = _done(s, request, me, uid)
    for g in user["grants"]:
        g["where"] = (
            "whole installation" if g["scope"] == "installation"
            else f"{g['scope']}: {names.get(g['scope'], {}).get(g['scope_id'], g['scope_id'])}"
        )  # fmt: skip
    scope_options = [("installation", "Whole installation")]
    for kind in ("network", "organisation", "service"):
        scope_options += [
            (f"{kind}:{i}", f"{kind.capitalize()}: {n}") for i, n in sorted(names[kind].items(), key=lambda kv: kv[1])
        ]
    return page(
        request,
        "admin/user.html",
        me,
        status_code=code,
        user=user,
        roles=[(r, r) for r in GRANTABLE_ROLES],
        scopes=scope_options,
        values=values or {},
        errors=errors,
        done=done,
        may=web_manage.account_actions(me.principal, user),
        issuer=settings_of(request).oidc_issuer or "",
    )


@router.get("/admin/users/{user_id}", response_class=HTMLResponse)
def user_page(request: Request, user_id: str, me: Me) -> HTMLResponse:
    return _user_page(request, me, user_id, [])


@router.post("/admin/users/{user_id}/{action}")
async def user_action(request: Request, user_id: str, action: str, me: Me) -> Response:
    fields = await form(request, me)
    if action not in ACTIONS:
        raise InvalidInput(f"no such action {action!r}")
    field = None
    try:
        uid = path_id(user_id)
        with db(request) as s:
            web_manage.require_administrator(me.principal, "change accounts")
            if action == "grant":
                field = "role"
                scope, _, ident = (opt(fields, "scope") or "installation").partition(":")
                if scope not in SCOPES:
                    raise InvalidInput("choose where the role is held")
                scope_id = opt_int({"id": ident}, "id", "the scope") if scope != "installation" else None
                accounts.grant(s, me.principal, me.clock, str(uid), need(fields, "role", "the role"), scope, scope_id)
            elif action == "revoke":
                grant_id = opt_int(fields, "grant", "the grant")
                if grant_id is None:
                    raise InvalidInput("choose the grant to revoke")
                accounts.revoke(s, me.principal, me.clock, grant_id, opt(fields, "note"), of=str(uid))
            elif action == "disable":
                accounts.disable_user(s, me.principal, me.clock, str(uid), opt(fields, "note"))
            elif action == "enable":
                accounts.enable_user(s, me.principal, me.clock, str(uid), opt(fields, "enable_note"))
            elif action == "sso-link":
                field = "issuer"
                issuer, subject = need(fields, "issuer", "the issuer"), need(fields, "subject", "the subject")
                signin.link_oidc(s, me.principal, me.clock, uid, issuer, subject)
            elif action == "sso-unlink":
                signin.unlink_oidc(s, me.principal, me.clock, uid)
            else:
                field = "password"
                password = fields.get("password") or ""
                if password != (fields.get("password_again") or ""):
                    raise InvalidInput("the two passwords are not the same")
                signin.set_password(s, me.principal, me.clock, uid, password, keep_session_id=me.session_id)
            s.commit()
    except PeerwatchError as exc:
        safe = {k: v for k, v in fields.items() if not k.startswith("password")}
        return _user_page(request, me, user_id, errors_of(exc, field), status_of(exc), safe)
    return redirect(f"/admin/users/{uid}?done={ACTIONS[action]}")


# ---------------------------------------------------------------- one's own tokens


def _tokens_page(
    request: Request, me: Who, errors: list[dict[str, Any]], code: int = 200, created: dict[str, Any] | None = None
) -> HTMLResponse:
    with db(request) as s:
        rows = accounts.tokens(s, me.principal)
        feeds = web_manage.feeds_for(s, me.principal)
        done = _done(s, request, me)
    return page(
        request,
        "admin/tokens.html",
        me,
        status_code=code,
        rows=rows,
        feeds=feeds,
        created=created,
        errors=errors,
        done=done,
        max_days=accounts.MAX_TOKEN_DAYS,
        default_days=web_manage.token_days("api", None),
    )


@router.get("/account/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, me: Me) -> HTMLResponse:
    return _tokens_page(request, me, [])


@router.post("/account/tokens")
async def token_create(request: Request, me: Me) -> Response:
    fields = await form(request, me)
    purpose = (fields.get("purpose") or "api").strip()
    try:
        days = opt_int(fields, "days", "days")
        with db(request) as s:
            row, token = web_manage.create_own_token(
                s, me.principal, me.clock, need(fields, "name", "what the token is for"), purpose, days
            )
            s.commit()
            created = {
                "id": row.id,
                "name": row.name,
                "token": token,
                "purpose": row.purpose,
                "expires_at": row.expires_at,
            }
    except PeerwatchError as exc:
        return _tokens_page(request, me, errors_of(exc, "name"), status_of(exc))
    # Shown once, on this response only (never in a URL): only its hash is kept.
    response = _tokens_page(request, me, [], 200, created)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/account/tokens/{token_id}/revoke")
async def token_revoke(request: Request, token_id: str, me: Me) -> Response:
    await form(request, me)
    try:
        with db(request) as s:
            accounts.revoke_token(s, me.principal, me.clock, path_id(token_id))
            s.commit()
    except PeerwatchError as exc:
        return _tokens_page(request, me, errors_of(exc), status_of(exc))
    return redirect("/account/tokens?done=token-revoked")
