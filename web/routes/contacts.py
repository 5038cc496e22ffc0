"""The contacts database and the reviewer pool (``/contacts``, ``/reviewers``): who holds which
role where, added, edited and retired from a date; changes to escalation addresses wait for a
second person (confirm or withdraw here). The use cases (states/services/contacts.py,
reviewers.py, operator.py) decide who may and refuse; what a person sees is their scope
(states/services/web_manage.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import select

from models.accounts import PendingChange
from models.tables import Network, Organisation, Service
from states.clock import local_date
from states.errors import InvalidInput, NotFound, PeerwatchError
from states.machines.visit import DISCIPLINES
from states.roles import CONTACT_ROLES
from states.services import contacts, operator, pending_changes, trust_accounts, web_manage
from states.services.contacts import ESCALATION_ROLES
from states.views import directory
from web.deps import Who, form
from web.render import page, redirect
from web.routes.manage import StaffMe, db, errors_of, flag, need, need_date, opt, opt_date, path_id, status_of

router = APIRouter(include_in_schema=False)  # pages, not the API: the OpenAPI document is /api/v1's

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


INVITED = {
    "invited": "Invitation sent to {email}: the email with a single-use link to choose a password goes on the "
    "next outbox dispatch. Their portal access is this contact's role, here, and ends when the contact is retired.",
    "invite-kept": "An invitation to {email} was already waiting to be sent: it is kept (no second email) and "
    "now lasts from today.",
}


def _names(s: Any) -> dict[str, dict[int, str]]:
    return {
        "service": {x.id: x.name for x in s.exec(_all(Service))},
        "organisation": {x.id: x.name for x in s.exec(_all(Organisation))},
        "network": {x.id: x.code for x in s.exec(_all(Network))},
    }


def _all(model: Any) -> Any:
    return select(model)


def _where(c: Any, names: dict[str, dict[int, str]]) -> str:
    if getattr(c, "service_id", None):
        return f"service: {names['service'].get(c.service_id, c.service_id)}"
    parts = []
    if c.organisation_id:
        parts.append(f"Trust: {names['organisation'].get(c.organisation_id, c.organisation_id)}")
    if c.network_id:
        parts.append(f"network: {names['network'].get(c.network_id, c.network_id)}")
    return ", ".join(parts) or "national"


def _pending_rows(s: Any, me: Who) -> list[dict[str, Any]]:
    rows = []
    for p in web_manage.visible_pending(s, me.principal, directory.pending_contact_changes(s)):
        role = str(p.payload.get("role") or "")
        rows.append(
            {
                "id": p.id,
                "action": p.action,
                "contact": p.target_id,
                "role": CONTACT_ROLES.get(role, role),
                "what": contacts.describe({k: v for k, v in p.payload.items() if k != "seen"}),
                "by": p.proposed_name,
                "mine": p.proposed_by == me.principal.user_id,
                "at": p.proposed_at,
            }
        )
    return rows


def _list_page(request: Request, me: Who, errors: list[dict[str, Any]], code: int = 200) -> HTMLResponse:
    every = flag(dict(request.query_params), "all")
    q = (request.query_params.get("q") or "").strip().lower()
    role = request.query_params.get("role") or ""
    today = local_date(me.clock.now())
    with db(request) as s:
        names = _names(s)
        rows = []
        for c in web_manage.visible_contacts(s, me.principal, directory.contacts(s, today, every)):
            where = _where(c, names)
            if q and q not in f"{c.name} {c.email} {where}".lower():
                continue
            if role and c.role != role:
                continue
            rows.append(
                {
                    "id": c.id,
                    "role": CONTACT_ROLES.get(c.role, c.role),
                    "escalation": c.role in ESCALATION_ROLES,
                    "name": c.name,
                    "email": c.email,
                    "where": where,
                    "from": c.valid_from,
                    "until": c.valid_until,
                    "status": contacts.status(c, today),
                }
            )
        pending = _pending_rows(s, me)
    return page(
        request,
        "contacts/index.html",
        me,
        status_code=code,
        rows=rows,
        pending=pending,
        every=every,
        q=q,
        role=role,
        roles=sorted(CONTACT_ROLES.items(), key=lambda kv: kv[1]),
        done=DONE.get(request.query_params.get("done", ""), ""),
        errors=errors,
    )


@router.get("/contacts", response_class=HTMLResponse)
def contacts_page(request: Request, me: StaffMe) -> HTMLResponse:
    return _list_page(request, me, [])


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
        c = contacts.get_contact(s, cid)
        if not web_manage.visible_contacts(s, me.principal, [c]):
            raise NotFound(f"contact {cid} not found (peerwatch contact list)")
        held, events = contacts.contact_history(s, cid)
        names = _names(s)
        data = {
            "id": c.id,
            "role": CONTACT_ROLES.get(c.role, c.role),
            "escalation": c.role in ESCALATION_ROLES,
            "name": c.name,
            "email": c.email,
            "where": _where(c, names),
            "status": contacts.status(c, today),
            "open": c.valid_until is None,
        }
        may_edit = web_manage.may_edit(s, me.principal, c)
        may_invite = trust_accounts.may_invite(s, me.principal, c, today)
        holders = [
            {"id": h.id, "name": h.name, "email": h.email, "from": h.valid_from, "until": h.valid_until,
             "status": contacts.status(h, today)}
            for h in held
        ]  # fmt: skip
        changes = [
            {"at": e.at, "change": e.trigger, "actor": e.actor, "role": e.role, "what": contacts.describe(e.data),
             "note": e.note or ""}
            for e in events
        ]  # fmt: skip
    return page(
        request,
        "contacts/contact.html",
        me,
        status_code=code,
        c=data,
        holders=holders,
        changes=changes,
        may_edit=may_edit,
        may_invite=may_invite,
        invited=INVITED.get(request.query_params.get("done", ""), "").format(email=c.email),
        today=today.isoformat(),
        values=values or {},
        errors=errors,
    )


@router.get("/contacts/{contact_id}", response_class=HTMLResponse)
def contact_page(request: Request, contact_id: str, me: StaffMe) -> HTMLResponse:
    return _contact_page(request, me, contact_id, [])


@router.post("/contacts/{contact_id}/edit")
async def contact_edit(request: Request, contact_id: str, me: StaffMe) -> Response:
    fields = await form(request, me)
    try:
        with db(request) as s:
            cid = path_id(contact_id)
            if not web_manage.visible_contacts(s, me.principal, [contacts.get_contact(s, cid)]):
                raise NotFound(f"contact {cid} not found (peerwatch contact list)")
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
            s.commit()
    except PeerwatchError as exc:
        return _contact_page(request, me, contact_id, errors_of(exc, "name"), status_of(exc), fields)
    if out.pending is not None:
        return redirect("/contacts?done=proposed")
    return redirect(f"/contacts/{out.row.id}?done=edited")


@router.post("/contacts/{contact_id}/retire")
async def contact_retire(request: Request, contact_id: str, me: StaffMe) -> Response:
    fields = await form(request, me)
    try:
        with db(request) as s:
            cid = path_id(contact_id)
            if not web_manage.visible_contacts(s, me.principal, [contacts.get_contact(s, cid)]):
                raise NotFound(f"contact {cid} not found (peerwatch contact list)")
            out = contacts.retire_contact(
                s,
                cid,
                effective=need_date(fields, "retire_from", "the date from which they receive no letters"),
                principal=me.principal,
                clock=me.clock,
                note=opt(fields, "retire_note"),
            )
            s.commit()
    except PeerwatchError as exc:
        return _contact_page(request, me, contact_id, errors_of(exc, "retire_from"), status_of(exc), fields)
    return redirect("/contacts?done=" + ("proposed" if out.pending is not None else "retired"))


@router.post("/contacts/{contact_id}/invite")
async def contact_invite(request: Request, contact_id: str, me: StaffMe) -> Response:
    await form(request, me)
    try:
        with db(request) as s:
            cid = path_id(contact_id)
            if not web_manage.visible_contacts(s, me.principal, [contacts.get_contact(s, cid)]):
                raise NotFound(f"contact {cid} not found (peerwatch contact list)")
            out = trust_accounts.invite_contact(s, me.principal, cid, me.clock)
            s.commit()
    except PeerwatchError as exc:
        return _contact_page(request, me, contact_id, errors_of(exc), status_of(exc))
    return redirect(f"/contacts/{out.contact_id}?done=" + ("invite-kept" if out.reused else "invited"))


@router.post("/contacts/changes/{change_id}/{decision}")
async def contact_change(request: Request, change_id: str, decision: str, me: StaffMe) -> Response:
    fields = await form(request, me)
    if decision not in ("confirm", "withdraw"):
        raise NotFound("not found")
    try:
        with db(request) as s:
            cid = path_id(change_id)
            if not web_manage.visible_pending(s, me.principal, [pending_changes.get_change(s, cid, "contact")]):
                raise NotFound(f"change {cid} not found (peerwatch contact pending)")
            if decision == "confirm":
                contacts.confirm_change(s, cid, principal=me.principal, clock=me.clock, note=opt(fields, "note"))
            else:
                contacts.withdraw_change(s, cid, principal=me.principal, clock=me.clock, note=opt(fields, "note"))
            s.commit()
    except PeerwatchError as exc:
        return _list_page(request, me, errors_of(exc), status_of(exc))
    return redirect("/contacts?done=" + ("confirmed" if decision == "confirm" else "withdrawn"))


# ------------------------------------------------------------------ reviewers


def _reviewers_page(
    request: Request, me: Who, errors: list[dict[str, Any]], code: int = 200, values: dict[str, str] | None = None
) -> HTMLResponse:
    today = local_date(me.clock.now())
    q = (request.query_params.get("q") or "").strip().lower()
    with db(request) as s:
        names = _names(s)
        rows = [
            {
                "id": r.id,
                "name": r.name,
                "email": r.email,
                "discipline": r.discipline,
                "where": _where(r, names),
                "pathways": ", ".join(r.pathways),
                "trained": r.trained,
                "retired": r.retired_on is not None and r.retired_on <= today,
                "retired_on": r.retired_on,
                "may_edit": web_manage.may_edit(s, me.principal, r),
            }
            for r in web_manage.visible_reviewers(s, me.principal, directory.reviewers(s))
            if not q or q in f"{r.name} {r.email} {r.discipline}".lower()
        ]
        orgs = [o.name for o in s.exec(_all(Organisation))]
        nets = [n.code for n in s.exec(_all(Network))]
    return page(
        request,
        "contacts/reviewers.html",
        me,
        status_code=code,
        rows=rows,
        q=q,
        disciplines=[(d, d.replace("_", " ")) for d in DISCIPLINES],
        organisations=sorted(orgs),
        networks=sorted(nets),
        today=today.isoformat(),
        done=DONE.get(request.query_params.get("done", ""), ""),
        values=values or {},
        errors=errors,
    )


@router.get("/reviewers", response_class=HTMLResponse)
def reviewers_page(request: Request, me: StaffMe) -> HTMLResponse:
    return _reviewers_page(request, me, [])


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
            r = contacts.get_reviewer(s, rid)
            if not web_manage.visible_reviewers(s, me.principal, [r]):
                raise NotFound(f"reviewer {rid} not found (peerwatch reviewer list)")
            if action == "edit":
                trained = {"yes": True, "no": False}.get(fields.get("trained", ""))
                contacts.edit_reviewer(
                    s,
                    rid,
                    changes={
                        "name": opt(fields, "name"),
                        "email": opt(fields, "email"),
                        "discipline": opt(fields, "discipline"),
                        "trained": trained,
                    },
                    effective=local_date(me.clock.now()),
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
