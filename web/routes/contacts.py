"""The contacts database and the reviewer pool (``/contacts``, ``/reviewers``): who holds which
role where, added, edited and retired from a date; changes to escalation addresses wait for a
second person (confirm or withdraw here). The use cases (states/services/contacts.py,
reviewers.py, operator.py) decide who may and refuse; what a person sees, a page at a time and
searched, is their scope (states/services/web_manage.py). A handler parses, calls, renders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from models.accounts import PendingChange
from states.clock import local_date
from states.errors import InvalidInput, NotFound, PeerwatchError
from states.machines.visit import DISCIPLINES
from states.roles import CONTACT_ROLES
from states.services import contacts, operator, trust_accounts, web_manage
from states.services.contacts import ESCALATION_ROLES
from states.services.web_manage import step
from states.views import directory
from web.deps import Who, form
from web.render import page, redirect
from web.routes.manage import StaffMe, db, errors_of, flag, need, need_date, opt, opt_date, path_id, status_of

router = APIRouter(include_in_schema=False)  # pages, not the API: the OpenAPI document is /api/v1's

MAX_PAGE = 100_000
PageNo = Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)]
Search = Annotated[str, Query(max_length=200)]

DONE = {
    "added": "Contact added.",
    "proposed": "Proposed: an escalation address changes only when a different person confirms it.",
    "edited": "Contact changed from the date given; the old row is kept as history.",
    "retired": "Contact retired from the date given.",
    "confirmed": "Change confirmed and applied.",
    "withdrawn": "Change withdrawn.",
    "reviewer-added": "Reviewer added.",
    "reviewer-edited": "Reviewer changed.",
    "reviewer-retired": "Reviewer retired from the date given.",
}
# A banner shows only when the person's own last audited step is the one named (not a link's say-so).
STEPS = {
    "added": step("contact", "add_contact"),
    "proposed": step("pending_change", "propose"),
    "edited": step("contact", "succeed_contact"),
    "retired": step("contact", "retire_contact"),
    "confirmed": step("contact", "add_contact", "succeed_contact", "retire_contact", has="change"),
    "withdrawn": step("pending_change", "withdraw"),
    "reviewer-added": step("reviewer", "add_reviewer"),
    "reviewer-edited": step("reviewer", "edit_reviewer"),
    "reviewer-retired": step("reviewer", "retire_reviewer"),
}
INVITED = {
    "invited": "Invitation sent to {email}: the email with a single-use link to choose a password goes on the "
    "next outbox dispatch. Their portal access is this contact's role, here, and ends when the contact is retired.",
    "invite-kept": "An invitation to {email} was already waiting to be sent: it is kept (no second email) and "
    "now lasts from today.",
}


def _done(s: Session, request: Request, me: Who, item_id: int | None = None) -> str:
    return DONE.get(web_manage.just_done(s, me.principal, request.query_params.get("done", ""), STEPS, item_id), "")


def _pages(path: str, data: dict[str, Any], kept: dict[str, str]) -> dict[str, str | None]:
    """The previous and next pages' links, keeping the search and filters."""
    kept = {k: v for k, v in kept.items() if v}

    def at(n: int) -> str:
        return f"{path}?" + urlencode({**kept, "page": n})

    return {
        "previous": at(data["page"] - 1) if data["page"] > 1 else None,
        "next": at(data["page"] + 1) if data["page"] < data["pages"] else None,
    }


def _list_page(
    request: Request,
    me: Who,
    errors: list[dict[str, Any]],
    code: int = 200,
    q: str = "",
    role: str = "",
    page_no: int = 1,
) -> HTMLResponse:
    every = flag(dict(request.query_params), "all")
    q = q.strip().lower()
    with db(request) as s:
        data = web_manage.contact_list(
            s, me.principal, local_date(me.clock.now()), every=every, q=q, role=role, page=page_no
        )
        pending = web_manage.pending_list(s, me.principal)
        done = _done(s, request, me)
    return page(
        request,
        "contacts/index.html",
        me,
        status_code=code,
        data=data,
        rows=data["rows"],
        pending=pending,
        every=every,
        q=q,
        role=role,
        roles=sorted(CONTACT_ROLES.items(), key=lambda kv: kv[1]),
        done=done,
        errors=errors,
        **_pages("/contacts", data, {"q": q, "role": role, "all": "yes" if every else ""}),
    )


@router.get("/contacts", response_class=HTMLResponse)
def contacts_page(
    request: Request, me: StaffMe, q: Search = "", role: Search = "", page_no: PageNo = 1
) -> HTMLResponse:
    return _list_page(request, me, [], q=q, role=role, page_no=page_no)


def _scope_options(s: Any, me: Who) -> list[tuple[str, str]]:
    choices = web_manage.contact_scope_choices(s, me.principal)
    out = [(f"service:{x['id']}", f"Service: {x['name']}") for x in choices["services"]]
    out += [(f"organisation:{x['id']}", f"Trust: {x['name']}") for x in choices["organisations"]]
    out += [(f"network:{x['id']}", f"Network: {x['name']}") for x in choices["networks"]]
    if choices["national"]:
        out.append(("national", "National"))
    return out


def _new_page(
    request: Request, me: Who, values: dict[str, str], errors: list[dict[str, Any]], code: int = 200
) -> HTMLResponse:
    with db(request) as s:
        scopes = _scope_options(s, me)
    return page(
        request,
        "contacts/new.html",
        me,
        status_code=code,
        values=values,
        errors=errors,
        scopes=scopes,
        roles=sorted(CONTACT_ROLES.items(), key=lambda kv: kv[1]),
        escalation=[CONTACT_ROLES.get(r, r) for r in ESCALATION_ROLES],
    )


@router.get("/contacts/new", response_class=HTMLResponse)
def contact_new(request: Request, me: StaffMe) -> HTMLResponse:
    return _new_page(request, me, {}, [])


@router.post("/contacts/new")
async def contact_add(request: Request, me: StaffMe) -> Response:
    fields = await form(request, me)
    try:
        scope, _, ident = need(fields, "scope", "where the role is held").partition(":")
        ids: dict[str, int | None] = {"service_id": None, "organisation_id": None, "network_id": None}
        if scope != "national":
            if scope not in ("service", "organisation", "network") or not (ident.isascii() and ident.isdigit()):
                raise InvalidInput("choose where the role is held")
            ids[f"{scope}_id"] = int(ident)
        with db(request) as s:
            out = contacts.add_contact(
                s,
                role=need(fields, "role", "the role"),
                name=need(fields, "name", "the name"),
                email=need(fields, "email", "the email address"),
                valid_from=opt_date(fields, "valid_from", "the date from which they hold the role"),
                principal=me.principal,
                clock=me.clock,
                note=opt(fields, "note"),
                **ids,
            )
            s.commit()
    except PeerwatchError as exc:
        return _new_page(request, me, fields, errors_of(exc), status_of(exc))
    return redirect("/contacts?done=" + ("proposed" if isinstance(out, PendingChange) else "added"))


def _contact_page(
    request: Request,
    me: Who,
    contact_id: str,
    errors: list[dict[str, Any]],
    code: int = 200,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    cid = path_id(contact_id)
    today = local_date(me.clock.now())
    with db(request) as s:
        data = web_manage.contact_detail(s, me.principal, cid, today)
        edited = _done(s, request, me, cid) if request.query_params.get("done") == "edited" else ""
        invites = {"invited": step("account", "invite", contact_id=cid, kept_waiting_letter=False),
                   "invite-kept": step("account", "invite", contact_id=cid, kept_waiting_letter=True)}  # fmt: skip
        invited = web_manage.just_done(s, me.principal, request.query_params.get("done", ""), invites)
    return page(
        request,
        "contacts/contact.html",
        me,
        status_code=code,
        **data,
        edited=edited,
        invited=INVITED.get(invited, "").format(email=data["c"]["email"]),
        today=today.isoformat(),
        values=values or {},
        errors=errors,
    )


@router.get("/contacts/{contact_id}", response_class=HTMLResponse)
def contact_page(request: Request, contact_id: str, me: StaffMe) -> HTMLResponse:
    return _contact_page(request, me, contact_id, [])


async def _on_contact(
    request: Request, me: Who, contact_id: str, field: str | None, act: Callable[[Session, int, dict[str, str]], str]
) -> Response:
    """A change to one contact in the person's scope (NotFound otherwise): ``act`` calls the use
    case and says where to go; a refusal shows the contact's page with the reason."""
    fields = await form(request, me)
    try:
        with db(request) as s:
            cid = web_manage.visible_contact(s, me.principal, path_id(contact_id)).id
            assert cid is not None
            where = act(s, cid, fields)
            s.commit()
    except PeerwatchError as exc:
        return _contact_page(request, me, contact_id, errors_of(exc, field), status_of(exc), fields)
    return redirect(where)


@router.post("/contacts/{contact_id}/edit")
async def contact_edit(request: Request, contact_id: str, me: StaffMe) -> Response:
    def act(s: Session, cid: int, fields: dict[str, str]) -> str:
        out = contacts.edit_contact(
            s,
            cid,
            name=opt(fields, "name"),
            email=opt(fields, "email"),
            effective=need_date(fields, "effective", "the date the change takes effect"),
            principal=me.principal,
            clock=me.clock,
            note=opt(fields, "note"),
        )
        return "/contacts?done=proposed" if out.pending is not None else f"/contacts/{out.row.id}?done=edited"

    return await _on_contact(request, me, contact_id, "name", act)


@router.post("/contacts/{contact_id}/retire")
async def contact_retire(request: Request, contact_id: str, me: StaffMe) -> Response:
    def act(s: Session, cid: int, fields: dict[str, str]) -> str:
        out = contacts.retire_contact(
            s,
            cid,
            effective=need_date(fields, "retire_from", "the date from which they receive no letters"),
            principal=me.principal,
            clock=me.clock,
            note=opt(fields, "retire_note"),
        )
        return "/contacts?done=" + ("proposed" if out.pending is not None else "retired")

    return await _on_contact(request, me, contact_id, "retire_from", act)


@router.post("/contacts/{contact_id}/invite")
async def contact_invite(request: Request, contact_id: str, me: StaffMe) -> Response:
    def act(s: Session, cid: int, fields: dict[str, str]) -> str:
        out = trust_accounts.invite_contact(s, me.principal, cid, me.clock)
        return f"/contacts/{out.contact_id}?done=" + ("invite-kept" if out.reused else "invited")

    return await _on_contact(request, me, contact_id, None, act)


@router.post("/contacts/changes/{change_id}/{decision}")
async def contact_change(request: Request, change_id: str, decision: str, me: StaffMe) -> Response:
    fields = await form(request, me)
    if decision not in ("confirm", "withdraw"):
        raise NotFound("not found")
    decide = contacts.confirm_change if decision == "confirm" else contacts.withdraw_change
    try:
        with db(request) as s:
            cid = path_id(change_id)
            web_manage.visible_change(s, me.principal, cid)
            decide(s, cid, principal=me.principal, clock=me.clock, note=opt(fields, "note"))
            s.commit()
    except PeerwatchError as exc:
        return _list_page(request, me, errors_of(exc), status_of(exc))
    return redirect("/contacts?done=" + ("confirmed" if decision == "confirm" else "withdrawn"))


# ------------------------------------------------------------------ reviewers


def _reviewers_page(
    request: Request,
    me: Who,
    errors: list[dict[str, Any]],
    code: int = 200,
    values: dict[str, str] | None = None,
    q: str = "",
    page_no: int = 1,
) -> HTMLResponse:
    today = local_date(me.clock.now())
    q = q.strip().lower()
    with db(request) as s:
        data = web_manage.reviewer_list(s, me.principal, today, q=q, page=page_no)
        names = directory.place_names(s)
        done = _done(s, request, me)
    return page(
        request,
        "contacts/reviewers.html",
        me,
        status_code=code,
        data=data,
        rows=data["rows"],
        q=q,
        disciplines=[(d, d.replace("_", " ")) for d in DISCIPLINES],
        organisations=sorted(names["organisation"].values()),
        networks=sorted(names["network"].values()),
        today=today.isoformat(),
        done=done,
        values=values or {},
        errors=errors,
        **_pages("/reviewers", data, {"q": q}),
    )


@router.get("/reviewers", response_class=HTMLResponse)
def reviewers_page(request: Request, me: StaffMe, q: Search = "", page_no: PageNo = 1) -> HTMLResponse:
    return _reviewers_page(request, me, [], q=q, page_no=page_no)


@router.post("/reviewers/new")
async def reviewer_add(request: Request, me: StaffMe) -> Response:
    fields = await form(request, me)
    try:
        with db(request) as s:
            operator.add_reviewer(
                s,
                name=need(fields, "name", "the reviewer's name"),
                email=need(fields, "email", "the reviewer's email"),
                discipline=need(fields, "discipline", "the discipline"),
                organisation=opt(fields, "organisation"),
                network=opt(fields, "network"),
                pathways=[p.strip() for p in (fields.get("pathways") or "").split(",") if p.strip()],
                trained=flag(fields, "trained"),
                principal=me.principal,
                clock=me.clock,
            )
            s.commit()
    except PeerwatchError as exc:
        return _reviewers_page(request, me, errors_of(exc, "name"), status_of(exc), fields)
    return redirect("/reviewers?done=reviewer-added")


@router.post("/reviewers/{reviewer_id}/{action}")
async def reviewer_change(request: Request, reviewer_id: str, action: str, me: StaffMe) -> Response:
    fields = await form(request, me)
    if action not in ("edit", "retire"):
        raise NotFound("not found")
    try:
        with db(request) as s:
            rid = path_id(reviewer_id)
            web_manage.visible_reviewer(s, me.principal, rid)
            if action == "edit":
                contacts.edit_reviewer(
                    s,
                    rid,
                    changes={
                        "name": opt(fields, "name"),
                        "email": opt(fields, "email"),
                        "discipline": opt(fields, "discipline"),
                        "trained": {"yes": True, "no": False}.get(fields.get("trained", "")),
                    },
                    principal=me.principal,
                    clock=me.clock,
                    note=opt(fields, "note"),
                )
            else:
                contacts.retire_reviewer(
                    s,
                    rid,
                    effective=need_date(fields, "retire_from", "the date from which they are not invited"),
                    principal=me.principal,
                    clock=me.clock,
                    note=opt(fields, "note"),
                )
            s.commit()
    except PeerwatchError as exc:
        return _reviewers_page(request, me, errors_of(exc), status_of(exc))
    return redirect("/reviewers?done=reviewer-" + ("edited" if action == "edit" else "retired"))
