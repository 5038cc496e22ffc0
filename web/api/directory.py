"""/api/v1's contacts and reviewers (the pages are web/routes/contacts.py): the ones in my scope
(states.services.web_manage), added, edited and retired from a date through the use cases
(states/services/contacts.py, reviewers.py, operator.py; changes to escalation addresses wait for
a second person, confirmed or withdrawn here), and a Trust's contact invited to the portal
(states/services/trust_accounts.py). Another network's contact or reviewer is the same 404 as a
missing one. These are the network's operations, as the pages are (a Trust's people: 403)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from models.accounts import PendingChange
from models.tables import Contact, Reviewer
from states.clock import local_date
from states.services import contacts, operator, trust_accounts, web_manage
from states.services.contacts import ESCALATION_ROLES
from web.api.common import WRITE_REFUSALS, NetworkWho, db
from web.api.models import MAX_ID, TEXT
from web.api.models_people import (
    ContactChanged,
    ContactEditIn,
    ContactIn,
    ContactsOut,
    InvitedOut,
    NoteIn,
    RetireIn,
    ReviewerEditIn,
    ReviewerNewIn,
    ReviewerOut,
    ReviewersOut,
)
from web.deps import Who

router = APIRouter()

MAX_PAGE = 100_000

ContactId = Annotated[int, Path(ge=1, le=MAX_ID, description="The contact's id.")]
ChangeId = Annotated[int, Path(ge=1, le=MAX_ID, description="The waiting change's id.")]
ReviewerId = Annotated[int, Path(ge=1, le=MAX_ID, description="The reviewer's id.")]


def _contact(c: Contact, who: Who) -> dict[str, Any]:
    return {
        "id": c.id,
        "role": c.role,
        "escalation": c.role in ESCALATION_ROLES,
        "name": c.name,
        "email": c.email,
        "service_id": c.service_id,
        "organisation_id": c.organisation_id,
        "network_id": c.network_id,
        "valid_from": c.valid_from,
        "valid_until": c.valid_until,
        "status": contacts.status(c, local_date(who.clock.now())),
    }


def _changed(out: Any, who: Who) -> ContactChanged:
    pending = getattr(out, "pending", None)
    return ContactChanged.model_validate(
        {
            "contact": _contact(out.row, who),
            "waiting": pending.id if pending is not None and pending.status == "pending" else None,
            "warnings": list(getattr(out, "warnings", [])),
        }
    )


Page = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Search = Annotated[str, Query(max_length=200, pattern=TEXT, description="Name, email or place contains (any case).")]


@router.get("/contacts", response_model=ContactsOut, summary="The contacts in my scope, and changes waiting")
def contact_list(
    request: Request,
    who: NetworkWho,
    q: Search = "",
    role: Annotated[str, Query(max_length=100, pattern=r"^[a-z-]*$", description="One contact role.")] = "",
    every: Annotated[bool, Query(alias="all", description="With retired, replaced and future contacts.")] = False,
    page: Page = 1,
) -> dict[str, Any]:
    today = local_date(who.clock.now())
    with db(request) as s:
        data = web_manage.contact_list(s, who.principal, today, every=every, q=q, role=role, page=page)
        waiting = web_manage.pending_list(s, who.principal)
    rows = [{**r, "valid_from": r["from"], "valid_until": r["until"]} for r in data["rows"]]
    return {**data, "rows": rows, "waiting": waiting}


@router.post(
    "/contacts",
    response_model=ContactChanged,
    status_code=201,
    responses=WRITE_REFUSALS,
    summary="Add a contact (an escalation role waits for a second person)",
)
def contact_add(request: Request, body: ContactIn, who: NetworkWho) -> ContactChanged:
    with db(request) as s:
        out = contacts.add_contact(
            s,
            role=body.role,
            name=body.name,
            email=body.email,
            service_id=body.service_id,
            organisation_id=body.organisation_id,
            network_id=body.network_id,
            valid_from=body.valid_from,
            principal=who.principal,
            clock=who.clock,
            note=body.note,
        )
        s.commit()
        if isinstance(out, PendingChange):
            return ContactChanged.model_validate({"contact": None, "waiting": out.id})
        return ContactChanged.model_validate({"contact": _contact(out, who), "waiting": None})


@router.post("/contacts/{contact_id}/edit", response_model=ContactChanged, responses=WRITE_REFUSALS,
             summary="Change a contact's name or email from a date")  # fmt: skip
def contact_edit(request: Request, contact_id: ContactId, body: ContactEditIn, who: NetworkWho) -> ContactChanged:
    with db(request) as s:
        web_manage.visible_contact(s, who.principal, contact_id)
        out = contacts.edit_contact(
            s, contact_id, name=body.name, email=body.email, effective=body.effective, principal=who.principal,
            clock=who.clock, note=body.note,
        )  # fmt: skip
        s.commit()
        return _changed(out, who)


@router.post("/contacts/{contact_id}/retire", response_model=ContactChanged, responses=WRITE_REFUSALS,
             summary="Retire a contact from a date")  # fmt: skip
def contact_retire(request: Request, contact_id: ContactId, body: RetireIn, who: NetworkWho) -> ContactChanged:
    with db(request) as s:
        web_manage.visible_contact(s, who.principal, contact_id)
        out = contacts.retire_contact(
            s, contact_id, effective=body.effective, principal=who.principal, clock=who.clock, note=body.note
        )
        s.commit()
        return _changed(out, who)


@router.post("/contacts/{contact_id}/invite", response_model=InvitedOut, responses=WRITE_REFUSALS,
             summary="Invite a Trust's or commissioner's contact to the portal")  # fmt: skip
def contact_invite(request: Request, contact_id: ContactId, who: NetworkWho) -> dict[str, Any]:
    with db(request) as s:
        web_manage.visible_contact(s, who.principal, contact_id)
        out = trust_accounts.invite_contact(s, who.principal, contact_id, who.clock)
        s.commit()
        return {
            "contact_id": out.contact_id, "user_id": out.user_id, "email": out.email,
            "account_created": out.account_created, "grant_id": out.grant_id, "role": out.role, "scope": out.scope,
            "scope_id": out.scope_id,
        }  # fmt: skip


def _decide(request: Request, who: NetworkWho, change_id: int, body: NoteIn, confirm: bool) -> ContactChanged:
    with db(request) as s:
        change = web_manage.visible_change(s, who.principal, change_id)
        if confirm:
            out: Any = contacts.confirm_change(s, change_id, principal=who.principal, clock=who.clock, note=body.note)
            s.commit()
            return _changed(out, who)
        contacts.withdraw_change(s, change_id, principal=who.principal, clock=who.clock, note=body.note)
        s.commit()
        target = s.get(Contact, change.target_id) if change.target_id is not None else None
        return ContactChanged.model_validate({"contact": _contact(target, who) if target else None, "waiting": None})


@router.post("/contacts/changes/{change_id}/confirm", response_model=ContactChanged, responses=WRITE_REFUSALS,
             summary="Confirm a change waiting for a second person (not the proposer)")  # fmt: skip
def change_confirm(
    request: Request, change_id: ChangeId, who: NetworkWho, body: NoteIn | None = None
) -> ContactChanged:
    return _decide(request, who, change_id, body or NoteIn(), True)


@router.post("/contacts/changes/{change_id}/withdraw", response_model=ContactChanged, responses=WRITE_REFUSALS,
             summary="Withdraw a change waiting for a second person")  # fmt: skip
def change_withdraw(
    request: Request, change_id: ChangeId, who: NetworkWho, body: NoteIn | None = None
) -> ContactChanged:
    return _decide(request, who, change_id, body or NoteIn(), False)


# ---------------------------------------------------------------- reviewers


def _reviewer(r: Reviewer) -> dict[str, Any]:
    return {
        "id": r.id, "name": r.name, "email": r.email, "discipline": r.discipline,
        "organisation_id": r.organisation_id, "network_id": r.network_id, "pathways": list(r.pathways),
        "trained": r.trained, "retired_on": r.retired_on,
    }  # fmt: skip


@router.get("/reviewers", response_model=ReviewersOut, summary="The reviewers in my scope")
def reviewer_list(request: Request, who: NetworkWho, q: Search = "", page: Page = 1) -> dict[str, Any]:
    with db(request) as s:
        return web_manage.reviewer_list(s, who.principal, local_date(who.clock.now()), q=q, page=page)


@router.post("/reviewers", response_model=ReviewerOut, status_code=201, responses=WRITE_REFUSALS,
             summary="Add a reviewer to the pool")  # fmt: skip
def reviewer_add(request: Request, body: ReviewerNewIn, who: NetworkWho) -> dict[str, Any]:
    with db(request) as s:
        r = operator.add_reviewer(
            s, name=body.name, email=body.email, discipline=body.discipline, organisation=body.organisation,
            network=body.network, pathways=body.pathways, trained=body.trained, principal=who.principal,
            clock=who.clock,
        )  # fmt: skip
        s.commit()
        return _reviewer(r)


@router.post("/reviewers/{reviewer_id}/edit", response_model=ReviewerOut, responses=WRITE_REFUSALS,
             summary="Change a reviewer (from today)")  # fmt: skip
def reviewer_edit(request: Request, reviewer_id: ReviewerId, body: ReviewerEditIn, who: NetworkWho) -> dict[str, Any]:
    with db(request) as s:
        web_manage.visible_reviewer(s, who.principal, reviewer_id)
        changes = body.model_dump(include={"name", "email", "discipline", "trained"})
        out = contacts.edit_reviewer(
            s, reviewer_id, changes=changes, effective=local_date(who.clock.now()), principal=who.principal,
            clock=who.clock, note=body.note,
        )  # fmt: skip
        s.commit()
        return _reviewer(out.row)


@router.post("/reviewers/{reviewer_id}/retire", response_model=ReviewerOut, responses=WRITE_REFUSALS,
             summary="Retire a reviewer from a date")  # fmt: skip
def reviewer_retire(request: Request, reviewer_id: ReviewerId, body: RetireIn, who: NetworkWho) -> dict[str, Any]:
    with db(request) as s:
        web_manage.visible_reviewer(s, who.principal, reviewer_id)
        out = contacts.retire_reviewer(
            s, reviewer_id, effective=body.effective, principal=who.principal, clock=who.clock, note=body.note
        )
        s.commit()
        return _reviewer(out.row)
