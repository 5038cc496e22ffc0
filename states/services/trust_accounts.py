"""Trust and commissioner accounts (issue 16): a contact invited by email to the portal, the
invitation accepted by choosing a password, and the access a contact's retirement ends.

- ``invite_contact``: network staff (network office, Network Manager, Regional Network Lead)
  holding the role in the contact's scope invite a contact holding a Trust role
  (``states.roles.TRUST_ROLES``) or a commissioner role (``COMMISSIONER_ROLES``). The account
  is found by the contact's email (lower-cased) or made (named as the contact); it is granted
  the contact's role in the contact's most specific scope (service, else Trust, else network;
  ``source`` "contact", ``contact_id``, ``valid_until`` the contact's); a single-use invitation
  (an ``AccessToken`` of purpose ``invite``) expiring after ``PEERWATCH_INVITATION_DAYS``
  (default 7) is issued and its letter queued in the outbox. Commissioners are scoped as their
  contact rows are: a commissioner contact per service, Trust or network, and its grant reaches
  the items of that service, that Trust's services, or that network's services.
- ``invitation_for`` / ``accept_invitation``: the link's token -> the page asking for a
  password; accepting sets it (the sign-in policy), uses the invitation up and signs the person
  in. An unknown, used, replaced or expired token gets the one message ``INVALID``.
- ``end_contact_grants``: a contact retired or replaced (``states.services.contacts``) ends
  the grants made from it on that date; the successor of an edit with the same email carries
  them on.

The secret: the invitation's token is never stored. The row keeps a SHA-256 hash; at invite
time it is the hash of a random value nobody ever sees, and the outbox letter holds only the
invitation's id and ``TOKEN_MARK`` where the token goes. The dispatcher
(``notifications.sealed``) makes the token when it sends the letter: it stores the new hash,
puts the token into the message handed to the mail service only, and the rendered text the
outbox keeps still holds the mark. Nothing in the database (outbox, audit, tokens) holds it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models import public
from models.accounts import AccessToken, RoleGrant, User
from models.db import begin_write
from models.public import PUBLIC_URL_ENV
from models.tables import Contact, Network, Organisation, OutboxMessage, OutboxStatus, Service
from models.types import is_row_id
from states.clock import Clock, local_date, today
from states.engine import record_change
from states.engine.letters import Message, freeze, write
from states.errors import InvalidInput, NotFound, PermissionDenied
from states.principal import NETWORK, ORGANISATION, SERVICE, Principal
from states.roles import (
    COMMISSIONER_ROLES,
    CONTACT_ROLES,
    NETWORK_MANAGER,
    NETWORK_OFFICE,
    REGIONAL_LEAD,
    TRUST_ROLES,
    check_side,
)
from states.services import accounts, signin
from states.services.accounts import ACTIVE, principal_for
from states.services.editing import places
from states.text import check_email, check_text

INVITERS = (NETWORK_OFFICE, NETWORK_MANAGER, REGIONAL_LEAD)
PORTAL_ROLES = (*TRUST_ROLES, *COMMISSIONER_ROLES)
PURPOSE = "invite"  # AccessToken.purpose of an invitation (the API and the feeds refuse it)
KIND = "invitation"  # the outbox rows' kind; their item id is the invitation's (the access token's) id
TEMPLATE = "account_invitation"  # notifications/templates/account_invitation.{txt,html}.j2
# Where the token goes in the letter: the dispatcher (notifications/sealed.py, the same text)
# replaces it in the message it sends, never in what the outbox keeps.
TOKEN_MARK = "TOKEN-WITHHELD-MADE-AT-SENDING"
TOKEN_PREFIX = "pwi_"
MAX_TOKEN = 200
DAYS_ENV, DEFAULT_DAYS, MAX_DAYS = "PEERWATCH_INVITATION_DAYS", 7, 60
INVALID = (
    "This invitation link is not valid: it has been used, has expired or was replaced by a newer "
    "invitation. Ask the network office to invite you again."
)
LONDON = ZoneInfo("Europe/London")
NO_ROLE = "(none)"  # accepting an invitation is done in no role, as signing in is


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_days() -> int:
    """How long an invitation lasts (``PEERWATCH_INVITATION_DAYS``, default 7, 1 to 60)."""
    raw = os.environ.get(DAYS_ENV, "").strip()
    if not raw:
        return DEFAULT_DAYS
    try:
        days = int(raw)
    except ValueError:
        raise InvalidInput(f"{DAYS_ENV}={raw!r}: give a whole number of days") from None
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"{DAYS_ENV}={days}: give 1 to {MAX_DAYS} days")
    return days


def public_url() -> str:
    """The address people reach the web application at (``models.public``, as the letters'
    portal links read it): the invitation's link starts with it; a bad setting is refused."""
    try:
        return public.public_url()
    except ValueError as exc:
        raise InvalidInput(f"{exc}; nothing was changed") from None


# ---------------------------------------------------------------- inviting


@dataclass(frozen=True)
class Invitation:
    """What ``invite_contact`` did (never the token: it is made when the letter is sent)."""

    contact_id: int
    user_id: int
    name: str
    email: str
    account_created: bool
    grant_id: int
    grant_created: bool
    role: str
    scope: str
    scope_id: int
    valid_until: date | None
    invitation_id: int
    expires_at: datetime
    outbox_id: int | None
    reused: bool  # an invitation already waiting to be sent: kept (its expiry moved on), no second letter


def contact_scope(c: Contact) -> tuple[str, int]:
    """The scope a contact's grant is made in: its service, else its Trust, else its network."""
    if c.service_id is not None:
        return SERVICE, c.service_id
    if c.organisation_id is not None:
        return ORGANISATION, c.organisation_id
    if c.network_id is not None:
        return NETWORK, c.network_id
    raise InvalidInput(
        f"contact {c.id} ({c.name}) is a national contact: an account is scoped to a service, a Trust or a "
        "network, so it cannot be invited; nothing was changed"
    )


def _contact(session: Session, contact_id: int) -> Contact:
    c = session.get(Contact, contact_id) if isinstance(contact_id, int) and is_row_id(contact_id) else None
    if c is None:
        raise NotFound(f"contact {contact_id} not found (peerwatch contact list)")
    return c


def _inviter_role(session: Session, principal: Principal, c: Contact) -> str:
    """The role ``principal`` invites in: one of ``INVITERS`` held in the contact's scope."""
    if principal.is_system:
        raise PermissionDenied("the system account invites nobody")
    refused: PermissionDenied | None = None
    for where in places(session, c):
        try:
            return principal.require_any(INVITERS, f"invite contact {c.id} to the portal", where)
        except PermissionDenied as exc:
            refused = refused or exc
    assert refused is not None
    raise refused


def may_invite(session: Session, principal: Principal, c: Contact, on: date) -> bool:
    """Would ``invite_contact`` go ahead for this contact on day ``on`` (the page's button)?"""
    if c.role not in PORTAL_ROLES or (c.valid_until is not None and c.valid_until <= on):
        return False
    if c.valid_from is not None and c.valid_from > on:
        return False
    if c.service_id is None and c.organisation_id is None and c.network_id is None:
        return False
    try:
        _inviter_role(session, principal, c)
    except PermissionDenied:
        return False
    return True


def _check_invitable(c: Contact, day: date) -> None:
    if c.role not in PORTAL_ROLES:
        raise InvalidInput(
            f"contact {c.id} ({c.name}) holds the role {CONTACT_ROLES.get(c.role, c.role)}: only Trust roles "
            f"({', '.join(TRUST_ROLES)}) and commissioner roles ({', '.join(COMMISSIONER_ROLES)}) are invited to "
            "the portal (network staff get their accounts from an administrator: peerwatch user add); "
            "nothing was changed"
        )
    if c.valid_until is not None and c.valid_until <= day:
        raise InvalidInput(
            f"contact {c.id} ({c.name}) was retired or replaced from {c.valid_until.isoformat()}: invite the "
            "current holder instead (peerwatch contact history); nothing was changed"
        )
    if c.valid_from is not None and c.valid_from > day:
        raise InvalidInput(
            f"contact {c.id} ({c.name}) holds the role from {c.valid_from.isoformat()}: invite them on or after "
            "that day; nothing was changed"
        )
    check_text(c.name, "the contact's name")  # a stored line break would reach a mail header
    check_email(c.email, "the contact's email")


def _where_name(session: Session, scope: str, scope_id: int) -> str:
    table: Any = {SERVICE: Service, ORGANISATION: Organisation, NETWORK: Network}[scope]
    row = session.get(table, scope_id)
    return str(getattr(row, "name", None) or f"{scope} {scope_id}")


def _account(session: Session, principal: Principal, role: str, clock: Clock, c: Contact) -> tuple[User, bool]:
    email = c.email.strip().lower()
    user = session.exec(select(User).where(func.lower(User.email) == email)).first()
    if user is not None:
        if user.status != ACTIVE:
            raise InvalidInput(
                f"the account with the email {email} (account {user.id}) is {user.status}: an administrator "
                "decides whether it may act again; nothing was changed"
            )
        if user.id == principal.user_id:
            raise PermissionDenied(
                f"{principal.name} may not invite their own account: another member of staff does; nothing was changed"
            )
        return user, False
    name = " ".join(c.name.split())
    user = User(name=name, email=email, status=ACTIVE, created_at=clock.now())
    session.add(user)
    session.flush()
    assert user.id is not None
    record_change(session, "account", user.id, "add", principal=principal, role=role, clock=clock, state=ACTIVE,
                  data={"name": name, "email": email, "os_login": None, "invited_from_contact": c.id})  # fmt: skip
    return user, True


def _grant(
    session: Session, principal: Principal, role: str, clock: Clock, user: User, c: Contact, day: date
) -> tuple[RoleGrant, bool]:
    scope, scope_id = contact_scope(c)
    assert user.id is not None
    check_side(c.role, scope, accounts.live_roles(session, user.id))  # never a network account, never network-wide
    live = session.exec(
        select(RoleGrant)
        .where(
            RoleGrant.user_id == user.id,
            RoleGrant.role == c.role,
            RoleGrant.scope == scope,
            RoleGrant.scope_id == scope_id,
            col(RoleGrant.revoked_at).is_(None),
        )
        .order_by(col(RoleGrant.id))
    ).all()
    for g in live:
        if g.valid_until is None or g.valid_until > day:
            return g, False
    assert user.id is not None
    row = RoleGrant(user_id=user.id, role=c.role, scope=scope, scope_id=scope_id, granted_by=principal.user_id,
                    granted_at=clock.now(), source="contact", contact_id=c.id, valid_until=c.valid_until)  # fmt: skip
    session.add(row)
    session.flush()
    record_change(session, "account", user.id, "grant", principal=principal, role=role, clock=clock,
                  state=user.status, data={"grant_id": row.id, "role": c.role, "scope": scope, "scope_id": scope_id,
                                           "source": "contact", "contact_id": c.id,
                                           "valid_until": c.valid_until})  # fmt: skip
    return row, True


def _waiting(session: Session, user_id: int, now: datetime) -> tuple[AccessToken, OutboxMessage] | None:
    """The account's live invitation whose letter has not gone yet, if there is one."""
    for tok in session.exec(
        select(AccessToken)
        .where(AccessToken.user_id == user_id, AccessToken.purpose == PURPOSE, col(AccessToken.revoked_at).is_(None))
        .order_by(col(AccessToken.id).desc())
    ):
        if tok.expires_at <= now:
            continue
        m = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == KIND, OutboxMessage.item_id == tok.id)
        ).first()
        if m is not None and m.status == OutboxStatus.QUEUED and m.attempts == 0:
            return tok, m
    return None


def _revoke_open(session: Session, user_id: int, now: datetime) -> list[int]:
    """Revoke the account's invitations not yet used: a new one replaces them."""
    rows = session.exec(
        select(AccessToken).where(
            AccessToken.user_id == user_id, AccessToken.purpose == PURPOSE, col(AccessToken.revoked_at).is_(None)
        )
    ).all()
    for t in rows:
        t.revoked_at = now
        session.add(t)
    return [t.id for t in rows if t.id is not None]


def invite_contact(
    session: Session, principal: Principal, contact_id: int, clock: Clock, *, days: int | None = None
) -> Invitation:
    """Invite a Trust or commissioner contact to the portal: their account (found or made), the
    grant of their contact role in their scope, and a single-use invitation emailed to them
    (queued in the outbox; the link's token is made when it is sent). Audited; the caller
    commits. A second invitation before the first letter has gone keeps that one (no second
    letter); after it, it replaces the earlier invitations (their links stop working)."""
    c = _contact(session, contact_id)
    acting = _inviter_role(session, principal, c)
    day, now = today(clock), clock.now()
    _check_invitable(c, day)
    days = invitation_days() if days is None else days
    if not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"an invitation lasts 1 to {MAX_DAYS} days (got {days!r})")
    base = public_url()
    user, created = _account(session, principal, acting, clock, c)
    grant, granted = _grant(session, principal, acting, clock, user, c, day)
    assert user.id is not None and grant.id is not None and c.id is not None and user.email is not None
    expires = now + timedelta(days=days)
    waiting = _waiting(session, user.id, now)
    replaced: list[int] = []
    if waiting is not None:
        tok, msg = waiting
        tok.expires_at = expires
        session.add(tok)
        outbox_id: int | None = msg.id
    else:
        replaced = _revoke_open(session, user.id, now)
        tok = AccessToken(user_id=user.id, name=f"invitation from contact {c.id}",
                          token_hash=_sha256(secrets.token_urlsafe(32)),  # a value nobody sees: no link works yet
                          prefix="invite", purpose=PURPOSE, created_at=now, expires_at=expires)  # fmt: skip
        session.add(tok)
        session.flush()
        assert tok.id is not None
        outbox_id = _queue_letter(session, c, user, tok, grant, base, principal, now)
    assert tok.id is not None
    record_change(session, "account", user.id, "invite", principal=principal, role=acting, clock=clock,
                  state=user.status, data={"invitation_id": tok.id, "contact_id": c.id, "grant_id": grant.id,
                                           "expires_at": expires, "replaced": replaced,
                                           "kept_waiting_letter": waiting is not None})  # fmt: skip
    return Invitation(
        contact_id=c.id, user_id=user.id, name=user.name, email=user.email, account_created=created,
        grant_id=grant.id, grant_created=granted, role=grant.role, scope=grant.scope, scope_id=grant.scope_id or 0,
        valid_until=grant.valid_until, invitation_id=tok.id, expires_at=expires, outbox_id=outbox_id,
        reused=waiting is not None,
    )  # fmt: skip


def _queue_letter(
    session: Session,
    c: Contact,
    user: User,
    tok: AccessToken,
    grant: RoleGrant,
    base: str,
    principal: Principal,
    now: datetime,
) -> int | None:
    """The invitation's letter, in the outbox: the link holds ``TOKEN_MARK``, not a token."""
    assert tok.id is not None and grant.scope_id is not None
    person = {"name": user.name, "email": user.email or "", "role": c.role, "role_name": CONTACT_ROLES[c.role]}
    context = {
        "to": [person],
        "cc": [],
        "person": person,
        "role_name": CONTACT_ROLES[c.role],
        "where": _where_name(session, grant.scope, grant.scope_id),
        "scope": grant.scope,
        "inviter": principal.name,
        "link": f"{base}/invitation/{TOKEN_MARK}",
        "site": base + "/",  # where to sign in afterwards (not "portal": notifications.links fills that)
        "expires_at": tok.expires_at,
        "expires_on": local_date(tok.expires_at),
        "invitation_id": tok.id,
    }
    key = f"{KIND}:{tok.id}"
    row = {
        "idempotency_key": key, "kind": KIND, "item_id": tok.id, "template": TEMPLATE, "category": "letter",
        "context": freeze(context), "subject": None, "body_text": None, "body_html": None, "to": [person], "cc": [],
        "status": OutboxStatus.QUEUED.value, "attempts": 0, "last_error": None, "created_at": now,
        "next_attempt_at": now, "sent_at": None, "message_id": None,
    }  # fmt: skip
    write(session, [Message(row=row)])
    return session.exec(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key)).first()


# ---------------------------------------------------------------- accepting


@dataclass(frozen=True)
class InvitationView:
    """What the invitation page shows (never the token)."""

    invitation_id: int
    name: str
    email: str
    expires_at: datetime


def _live_invitation(session: Session, token: str, clock: Clock) -> tuple[AccessToken, User]:
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN:
        raise NotFound(INVALID)
    row = session.exec(
        select(AccessToken).where(AccessToken.token_hash == _sha256(token), AccessToken.purpose == PURPOSE)
    ).first()
    if row is None or row.revoked_at is not None or row.expires_at <= clock.now():
        raise NotFound(INVALID)
    user = session.get(User, row.user_id)
    if user is None or user.status != ACTIVE:
        raise NotFound(INVALID)
    return row, user


def invitation_for(session: Session, token: str, clock: Clock) -> InvitationView:
    """The invitation the link's token stands for, or ``NotFound(INVALID)`` (unknown, used,
    replaced, expired, or its account disabled: one message for all). Changes nothing."""
    row, user = _live_invitation(session, token, clock)
    assert row.id is not None
    return InvitationView(invitation_id=row.id, name=user.name, email=user.email or "", expires_at=row.expires_at)


def accept_invitation(db: Engine, token: str, password: str, address: str | None, clock: Clock) -> signin.SignedIn:
    """Accept an invitation: the password chosen is set (``signin.set_password``, the sign-in
    policy), the invitation is used up, and the person is signed in (a new session, audited
    ``signed_in`` with method ``invitation``), all in one transaction. ``NotFound(INVALID)`` for
    a token that is not live, ``InvalidInput`` for a password the policy refuses: nothing changed."""
    with Session(db, expire_on_commit=False) as s:
        begin_write(s)
        row, user = _live_invitation(s, token, clock)
        assert row.id is not None and user.id is not None
        me = principal_for(s, user, "web", clock=clock)
        signin.set_password(s, me, clock, None, password if isinstance(password, str) else "")
        now = clock.now()
        used = s.execute(
            update(AccessToken)
            .where(col(AccessToken.id) == row.id, col(AccessToken.revoked_at).is_(None))
            .values(revoked_at=now, last_used_at=now)
        )
        if getattr(used, "rowcount", 0) != 1:  # accepted at the same moment elsewhere
            s.rollback()
            raise NotFound(INVALID)
        record_change(s, "account", user.id, "invitation_accepted", principal=me, role=NO_ROLE, clock=clock,
                      state=user.status, data={"invitation_id": row.id, "address": address})  # fmt: skip
        done = signin.start_session(s, user, clock, address, "invitation")
        s.commit()
        return done


# ---------------------------------------------------------------- a contact's retirement


def end_contact_grants(
    session: Session,
    old: Contact,
    effective: date,
    principal: Principal,
    role: str,
    clock: Clock,
    successor: Contact | None = None,
) -> list[int]:
    """The grants made from contact ``old`` end on ``effective`` (no access from that day), as
    the contact does; when ``successor`` (an edit's new row) has the same email, it is the same
    person still in the role: the grants move to the successor and go on. Each change is
    audited on the account; returns the ids of the grants ended."""
    grants = session.exec(
        select(RoleGrant)
        .where(RoleGrant.contact_id == old.id, col(RoleGrant.revoked_at).is_(None))
        .order_by(col(RoleGrant.id))
    ).all()
    same = successor is not None and successor.email.strip().lower() == old.email.strip().lower()
    ended: list[int] = []
    for g in grants:
        if g.valid_until is not None and g.valid_until <= effective:
            continue  # already ends no later
        assert g.id is not None
        user = session.get(User, g.user_id)
        state = user.status if user is not None else ACTIVE
        if same and successor is not None:
            g.contact_id = successor.id
            session.add(g)
            record_change(session, "account", g.user_id, "grant_carried", principal=principal, role=role,
                          clock=clock, state=state, data={"grant_id": g.id, "role": g.role, "scope": g.scope,
                                                          "scope_id": g.scope_id, "contact_id": successor.id,
                                                          "replaces_contact": old.id})  # fmt: skip
            continue
        g.valid_until = effective
        session.add(g)
        ended.append(g.id)
        record_change(session, "account", g.user_id, "grant_ends", principal=principal, role=role, clock=clock,
                      state=state, data={"grant_id": g.id, "role": g.role, "scope": g.scope, "scope_id": g.scope_id,
                                         "contact_id": old.id, "valid_until": effective})  # fmt: skip
        _end_invitations(session, g.user_id, effective)
    session.flush()
    return ended


def _end_invitations(session: Session, user_id: int, effective: date) -> None:
    """An invitation not yet taken up works no later than the access it was for: it expires at
    the start of ``effective`` (Europe/London) at the latest."""
    ends = datetime.combine(effective, time(0), tzinfo=LONDON)
    for t in session.exec(
        select(AccessToken).where(
            AccessToken.user_id == user_id, AccessToken.purpose == PURPOSE, col(AccessToken.revoked_at).is_(None)
        )
    ):
        if t.expires_at > ends:
            t.expires_at = ends
            session.add(t)


__all__ = [
    "DAYS_ENV",
    "INVALID",
    "INVITERS",
    "KIND",
    "PORTAL_ROLES",
    "PUBLIC_URL_ENV",
    "TEMPLATE",
    "TOKEN_MARK",
    "Invitation",
    "InvitationView",
    "accept_invitation",
    "contact_scope",
    "end_contact_grants",
    "invitation_days",
    "invitation_for",
    "invite_contact",
    "may_invite",
    "public_url",
]
