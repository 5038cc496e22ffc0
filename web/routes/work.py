"""My work (``/``): the deadlines the signed-in person owns where the items sit, overdue first, a
page at a time; the four-eyes proposals waiting for them; the outbox's incidents for operators.
The rules are in states/views/work.py; this page only shows them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from states.views import work
from states.views.portal import has_staff_role
from web.deps import Who, engine_of, who
from web.render import page, redirect

router = APIRouter()

PER_PAGE = 25
MAX_PAGE = 100_000


@router.get("/", response_class=HTMLResponse, response_model=None)
def my_work(
    request: Request,
    me: Annotated[Who, Depends(who)],
    page_no: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
    overdue: Annotated[str, Query(max_length=8)] = "",
) -> Response:
    """My work: what I owe, overdue first. Someone with no staff role (a Trust or commissioner
    user) is sent to the portal's "What is asked of us"."""
    if not has_staff_role(me.principal):
        return redirect("/portal")
    overdue_only = overdue in ("1", "true", "yes", "on")
    with Session(engine_of(request), expire_on_commit=False) as s:
        data = work.my_work(
            s, me.principal, me.clock, limit=PER_PAGE, offset=(page_no - 1) * PER_PAGE, overdue_only=overdue_only
        )
    pages = max(1, -(-data["total"] // PER_PAGE))
    if data["total_is_at_least"] and len(data["deadlines"]) == PER_PAGE:
        pages = max(pages, page_no + 1)  # counted only so far: there is at least one more page
    query = "&overdue=1" if overdue_only else ""
    return page(
        request,
        "work/index.html",
        me,
        work=data,
        page_no=page_no,
        pages=pages,
        previous=f"/?page={page_no - 1}{query}" if page_no > 1 else None,
        next=f"/?page={page_no + 1}{query}" if page_no < pages else None,
    )
