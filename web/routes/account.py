"""A person's own account (``/account``): who I am, my grants, changing my own password (my other
sessions end; this one stays signed in), my open sessions and "sign out of every other session".

The use cases (states/services/account_self.py) decide and refuse, audit each change and throttle
guesses at the current password as sign-in does; these handlers read the form and show the
result. The page is rendered straight after a change (no redirect with a banner a link could fake).
Anyone signed in may use it, whatever their roles. My tokens stay at ``/account/tokens``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from states.errors import PeerwatchError
from states.services import account_self
from web.auth import client_address
from web.deps import Who, clock_of, engine_of, form
from web.render import page
from web.routes.manage import Me, db, errors_of, status_of

router = APIRouter(include_in_schema=False)  # pages, not the API: the OpenAPI document is /api/v1's

PASSWORD_FIELDS = ("current_password", "new_password", "new_password_again")


def _page(
    request: Request, me: Who, *, errors: list[dict[str, Any]] | None = None, done: str = "", code: int = 200
) -> HTMLResponse:
    with db(request) as s:
        data = account_self.my_account(s, me.principal, clock_of(request), me.session_id)
    return page(request, "account/account.html", me, status_code=code, account=data, errors=errors or [], done=done)


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, me: Me) -> HTMLResponse:
    return _page(request, me)


@router.post("/account/password", response_class=HTMLResponse)
async def change_password(request: Request, me: Me) -> HTMLResponse:
    fields = await form(request, me)
    try:
        ended = account_self.change_own_password(
            engine_of(request),
            me.principal,
            clock_of(request),
            current=fields.get("current_password", ""),
            new=fields.get("new_password", ""),
            again=fields.get("new_password_again", ""),
            session_id=me.session_id,
            address=client_address(request),
        )
    except PeerwatchError as exc:
        field = "current_password" if "current password" in str(exc) else "new_password"
        return _page(request, me, errors=errors_of(exc, field), code=status_of(exc))
    return _page(request, me, done=f"Password changed. You are still signed in here; {_ended(ended)}.")


@router.post("/account/sessions/end-others", response_class=HTMLResponse)
async def end_other_sessions(request: Request, me: Me) -> Response:
    await form(request, me)
    try:
        with db(request) as s:
            ended = account_self.end_other_sessions(s, me.principal, clock_of(request), me.session_id)
            s.commit()
    except PeerwatchError as exc:
        return _page(request, me, errors=errors_of(exc), code=status_of(exc))
    return _page(request, me, done=f"Signed out of your other sessions: {_ended(ended)}.")


def _ended(count: int) -> str:
    if count == 0:
        return "you had no other session open"
    return f"{count} other session{'s' if count != 1 else ''} ended"
