"""The shapes of /api/v1's contacts and reviewers, administration of accounts, and the portal's
list of what is asked: requests refuse unknown keys, answers ignore keys added later."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field

from states.machines.visit import DISCIPLINES
from web.api.models import MAX_ID, NAME, TEXT, In, Out

Discipline = Literal[tuple(DISCIPLINES)]  # type: ignore[valid-type]
Email = Field(min_length=3, max_length=320, pattern=TEXT)
Note = Field(None, max_length=10_000, pattern=TEXT, description="Why (kept with the audited change).")

# ---------------------------------------------------------------- contacts


class ContactOut(Out):
    id: int
    role: str = Field(description="The contact role (peerwatch contact roles).")
    escalation: bool = Field(description="An escalation address: changes wait for a second person.")
    name: str
    email: str
    service_id: int | None
    organisation_id: int | None
    network_id: int | None
    valid_from: date | None
    valid_until: date | None
    status: str = Field(description="current, future, retired or replaced, today.")


class ContactRow(Out):
    id: int
    role: str = Field(description="The role's name.")
    escalation: bool = Field(description="An escalation address: changes wait for a second person.")
    name: str
    email: str
    where: str = Field(description="The service, Trust or network it is held at (or national).")
    valid_from: date | None
    valid_until: date | None
    status: str = Field(description="current, future, retired or replaced, today.")


class ChangeWaiting(Out):
    id: int
    action: str
    contact: int | None = Field(description="The contact it changes (none: an addition).")
    role: str
    what: str = Field(description="The change in one line.")
    by: str = Field(description="Who proposed it.")
    mine: bool = Field(description="I proposed it: only a different person confirms it; I may withdraw it.")
    at: datetime


class ContactsOut(Out):
    rows: list[ContactRow] = Field(description="A page of the contacts in my scope (in force today, unless all).")
    total: int
    page: int
    pages: int
    waiting: list[ChangeWaiting] = Field(description="Changes to escalation addresses waiting for a second person.")


class ContactIn(In):
    role: str = Field(max_length=100, pattern=NAME)
    name: str = Field(min_length=1, max_length=500, pattern=TEXT)
    email: str = Email
    service_id: int | None = Field(None, ge=1, le=MAX_ID, description="Held at a service, or")
    organisation_id: int | None = Field(None, ge=1, le=MAX_ID, description="at a Trust, or")
    network_id: int | None = Field(None, ge=1, le=MAX_ID, description="for a network (none of the three: national).")
    valid_from: date | None = Field(None, description="Holds the role from this day (today when not given).")
    note: str | None = Note


class ContactEditIn(In):
    name: str | None = Field(None, min_length=1, max_length=500, pattern=TEXT)
    email: str | None = Field(None, min_length=3, max_length=320, pattern=TEXT)
    effective: date = Field(description="Letters go to the contact as edited from this day.")
    note: str | None = Note


class RetireIn(In):
    effective: date = Field(description="From this day: no letters (a contact), no panels (a reviewer).")
    note: str | None = Note


class NoteIn(In):
    note: str | None = Note


class ContactChanged(Out):
    contact: ContactOut | None = Field(
        description="The contact now in force (unchanged when the change waits; none: an addition waits)."
    )
    waiting: int | None = Field(description="The change waiting for a second person's confirm, if it waits.")
    warnings: list[str] = Field(default_factory=list)


class InvitedOut(Out):
    contact_id: int
    user_id: int
    email: str
    account_created: bool
    grant_id: int
    role: str
    scope: str
    scope_id: int


# ---------------------------------------------------------------- reviewers


class ReviewerOut(Out):
    id: int
    name: str
    email: str
    discipline: str
    organisation_id: int | None
    network_id: int | None
    pathways: list[str]
    trained: bool
    retired_on: date | None = Field(description="Not invited onto panels from this day.")


class ReviewerRow(Out):
    id: int
    name: str
    email: str
    discipline: str
    where: str = Field(description="The employing Trust or the network (or national).")
    pathways: str
    trained: bool
    retired: bool = Field(description="Out of the pool today.")
    retired_on: date | None
    may_edit: bool = Field(description="I may change or retire this reviewer.")


class ReviewersOut(Out):
    rows: list[ReviewerRow] = Field(description="A page of the reviewers in my scope.")
    total: int
    page: int
    pages: int


class ReviewerNewIn(In):
    name: str = Field(min_length=1, max_length=500, pattern=TEXT)
    email: str = Email
    discipline: Discipline
    organisation: str | None = Field(None, max_length=500, pattern=TEXT, description="Employing Trust's name.")
    network: str | None = Field(None, max_length=100, pattern=TEXT, description="The network's code.")
    pathways: list[str] = Field([], max_length=50)
    trained: bool = False


class ReviewerEditIn(In):
    name: str | None = Field(None, min_length=1, max_length=500, pattern=TEXT)
    email: str | None = Field(None, min_length=3, max_length=320, pattern=TEXT)
    discipline: Discipline | None = None
    trained: bool | None = None
    note: str | None = Note


# ---------------------------------------------------------------- administration


class UserRow(Out):
    id: int
    name: str
    email: str | None
    os_login: str | None
    status: str
    roles: list[str] = Field(description="Grants in force: role, or role@scope:id.")
    last_seen_at: datetime | None


class UsersOut(Out):
    users: list[UserRow]


class GrantRow(Out):
    id: int
    role: str
    scope: str
    scope_id: int | None
    granted_by: int | None
    granted_at: datetime
    revoked_at: datetime | None
    revoked_by: int | None
    source: str | None
    contact_id: int | None
    valid_until: date | None


class UserOut(Out):
    id: int
    name: str
    email: str | None
    os_login: str | None
    status: str
    created_at: datetime
    last_seen_at: datetime | None
    grants: list[GrantRow]
    tokens: list[dict[str, Any]] = Field(description="The account's tokens (never the token itself).")


class UserIn(In):
    name: str = Field(min_length=1, max_length=500, pattern=TEXT)
    email: str = Email
    os_login: str | None = Field(None, max_length=64, pattern=TEXT)


class GrantIn(In):
    role: str = Field(max_length=100, pattern=NAME)
    scope: Literal["installation", "network", "organisation", "service"] = "installation"
    scope_id: int | None = Field(None, ge=1, le=MAX_ID, description="The network's, Trust's or service's id.")


class RevokeIn(In):
    grant: int = Field(ge=1, le=MAX_ID, description="The grant's id (one of this account's).")
    note: str | None = Note


# ---------------------------------------------------------------- the portal


class PortalOut(Out):
    summary: Any = Field(description="Every service my Trust or commissioner roles reach, with its counts.")
    programmes: list[dict[str, Any]]
    rules: list[Any] = Field(description="What happens if each kind of date is missed.")
    today: date
    groups: list[dict[str, Any]] = Field(description="This page's services (and the Trust's own items): what is asked.")
    services: int
    open_items: int
    overdue: int
    page: int
    pages: int
    has_portal_role: bool


class ResponseIn(In):
    text: str = Field(min_length=1, max_length=100_000, pattern=TEXT, description="The formal response.")
    version: int = Field(ge=1, le=MAX_ID, description="The risk's version read (a stale one: 409).")


class ResponseOut(Out):
    id: int
    risk_id: int
    number: int = Field(description="1 for the first response to this risk, and so on.")
    submitted_name: str
    submitted_role: str
    submitted_at: datetime
