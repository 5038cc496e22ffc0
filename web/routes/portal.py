"""The Trust portal's own pages (issue 16 items 2 and 10): "What is asked of us" (``/portal``, and
one service: ``/portal/services/{id}``), a letter to download as it was sent
(``/portal/letters/{id}.eml``) and shared learning (``/learning``, one network:
``/learning/{code}``).

What is shown, and to whom, is decided in states/views/portal.py and states/views/learning.py; a
service, letter or network the signed-in person may not see is the same 404 as a missing one.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from notifications.build import build_letter
from notifications.transports import DEFAULT_SENDER
from states.errors import InvalidInput
from states.views import learning as learning_view
from states.views import portal as portal_view
from web.deps import Who, engine_of, who
from web.render import page
from web.routes.manage import path_id

router = APIRouter(include_in_schema=False)  # pages, not the API: the OpenAPI document is /api/v1's

Me = Annotated[Who, Depends(who)]


def _session(request: Request) -> Session:
    return Session(engine_of(request), expire_on_commit=False)


@router.get("/portal", response_class=HTMLResponse)
def portal(
    request: Request, me: Me, page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1
) -> HTMLResponse:
    """What is asked of us: every service my Trust or commissioner roles reach, in one screen
    (each service's items in detail, a page of services at a time)."""
    with _session(request) as s:
        data = portal_view.what_is_asked(s, me.principal, me.clock, page=page_no)
    return page(request, "portal/index.html", me, data=data, one=False)


@router.get("/portal/services/{service_id}", response_class=HTMLResponse)
def portal_service(request: Request, service_id: str, me: Me) -> HTMLResponse:
    """One service's part of the page (404 unless my grants reach it)."""
    sid = path_id(service_id)
    with _session(request) as s:
        data = portal_view.what_is_asked(s, me.principal, me.clock, service_id=sid)
    return page(request, "portal/index.html", me, data=data, one=True)


class _At:
    """The clock a downloaded letter is dated by: when it was sent (or written, if not sent yet)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


@router.get("/portal/letters/{message_id}.eml")
def letter_eml(request: Request, message_id: str, me: Me) -> Response:
    """A letter about an item I can see, as an email message (RFC 5322), with the files it carried."""
    mid = path_id(message_id)
    with _session(request) as s:
        row, files = portal_view.letter_to_download(s, me.principal, mid)
    sender = os.environ.get("PEERWATCH_MAIL_FROM", DEFAULT_SENDER)  # as the dispatcher sends it
    try:
        msg = build_letter(row, sender, _At(row.sent_at or row.created_at), files, row.message_id)
    except ValueError as exc:  # a stored value no mail header may hold: the outbox's incident, not this page's
        raise InvalidInput(f"letter {mid} cannot be written as an email: {exc}") from None
    return Response(
        msg.as_bytes(),
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="peerwatch-letter-{mid}.eml"'},
    )


@router.get("/learning", response_class=HTMLResponse)
def learning(request: Request, me: Me) -> HTMLResponse:
    """Shared learning: the networks I am a member of, where their policy shares it."""
    with _session(request) as s:
        data = learning_view.learning(s, me.principal, me.clock)
    return page(request, "portal/learning.html", me, data=data)


@router.get("/learning/{code}", response_class=HTMLResponse)
def learning_network(request: Request, code: str, me: Me) -> HTMLResponse:
    """One network's shared learning (404 unless I am a member and it shares)."""
    with _session(request) as s:
        data = learning_view.learning(s, me.principal, me.clock, network_code=code[:40])
    return page(request, "portal/learning.html", me, data=data)
