"""The contacts database and the reviewer pool, changed by people: added, edited, retired, audited.

A contact is a person holding a role at a level (service, Trust, network, national) for a
span of days: from ``valid_from`` (None: always) until the day before ``valid_until`` (None:
still in force). Letters go to the holders in force on the clock's date
(``states.engine.letters.resolve``). An edit never overwrites: it closes the row at the
effective date and writes its successor from that date (``replaces_id``), so who held the role
when is kept, and letters written before the date still name the person they went to. A
retirement closes the row at its date; portal access granted from the row (an invited Trust or
commissioner account, ``states.services.trust_accounts``) ends on the same date, or moves to the
successor of an edit that keeps the email. Every change is an audit event on the one hash chain
(``states.engine.record_change``), with the account's user id, name and role.

Who may change them: network staff (network office, Network Manager, Regional Network Lead,
operator) holding the role in the contact's scope (its service, Trust or network; a national
contact needs an installation-wide grant). Auditors and administrators may not.

Four eyes on escalation addresses (issue 14): adding, editing or retiring a contact whose role
is in ``ESCALATION_ROLES`` is first *proposed* (``states.services.pending_changes``), changes
nothing the letters use, and is applied only when a different account confirms it
(``confirm_change``, in the same transaction); a confirmation of a change whose contact changed
since it was proposed is refused. Other roles change at once.

The reviewer pool's use cases live in ``states/services/reviewers.py`` (imported here, where
they were first written); who may change either is ``states/services/editing.py``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlmodel import Session, col, select

from models.accounts import PendingChange
from models.tables import AuditEvent, Contact, Network, Organisation, Service
from models.types import is_row_id
from states import engine
from states.clock import Clock, local_date, parse_date
from states.engine.audit import jsonable
from states.engine.letters import forget_recipients, resolve
from states.errors import InvalidInput, NotFound, StaleVersion
from states.principal import Principal
from states.roles import CONTACT_ROLES, check_contact_role
from states.services import pending_changes
from states.services.editing import EDITORS, Change, in_range, may_change
from states.services.reviewers import (
    REVIEWER_FIELDS,
    add_reviewer,
    edit_reviewer,
    get_reviewer,
    retire_reviewer,
    reviewer_history,
)
from states.services.trust_accounts import end_contact_grants
from states.text import check_row
from states.views.directory import escalation_changes

# Where an escalation goes (000 s6; DOMAIN.md, the escalation ladder beyond the provider): a
# change to one of these needs a second person (four eyes) and is shown in the views.
ESCALATION_ROLES = (
    "cqc",
    "commissioning-lead",
    "responsible-commissioner",
    "accountable-officer",
    "icb",
    "tpd",
    "ra",
    "asct",
)
_CONTACT = Contact.__table__  # type: ignore[attr-defined]


def get_contact(session: Session, contact_id: int) -> Contact:
    in_range(contact_id, "contact")
    c = session.get(Contact, contact_id)
    if c is None:
        raise NotFound(f"contact {contact_id} not found (peerwatch contact list)")
    return c


def status(c: Contact, today: date) -> str:
    if c.valid_until is not None and c.valid_until <= today:
        return "replaced" if _successor_id(c) else "retired"
    if c.valid_from is not None and c.valid_from > today:
        return "from " + c.valid_from.isoformat()
    return "current" if c.valid_until is None else "until " + c.valid_until.isoformat()


def _successor_id(c: Contact) -> int | None:
    return getattr(c, "_successor", None)


def _today(clock: Clock) -> date:
    return local_date(clock.now())


def _forget(session: Session) -> None:
    forget_recipients(session)


# ------------------------------------------------------------------ contacts


def add_contact(
    session: Session,
    *,
    role: str,
    name: str,
    email: str,
    service_id: int | None = None,
    organisation_id: int | None = None,
    network_id: int | None = None,
    valid_from: date | None = None,
    principal: Principal,
    clock: Clock,
    note: str | None = None,
) -> Contact | PendingChange:
    """A person holding ``role`` (from ``valid_from``, or at once); audited. An escalation role is
    only proposed (returns the ``PendingChange``). The caller commits."""
    check_contact_role(role)
    c = Contact(role=role, name=name, email=email, valid_from=valid_from)
    if service_id is not None:
        in_range(service_id, "service")
        svc = session.get(Service, service_id)
        if svc is None:
            raise NotFound(f"service {service_id} not found")
        c.service_id, c.organisation_id = svc.id, svc.organisation_id
    if organisation_id is not None:
        if not is_row_id(organisation_id) or session.get(Organisation, organisation_id) is None:
            raise NotFound(f"organisation {organisation_id} not found")
        c.organisation_id = organisation_id
    if network_id is not None:
        if not is_row_id(network_id) or session.get(Network, network_id) is None:
            raise NotFound(f"network {network_id} not found")
        c.network_id = network_id
    check_row(c)  # the entry rule (states/text.py), before anything is proposed or written
    acting = may_change(session, principal, c, f"add a {role} contact")
    if role in ESCALATION_ROLES:
        payload = {**_fields(c), "from": valid_from}
        return pending_changes.propose(
            session, "contact", "add", None, payload, principal=principal, role=acting, clock=clock, note=note
        )
    return _insert(session, c, principal, acting, clock, note)


def _insert(
    session: Session, c: Contact, principal: Principal, role: str, clock: Clock, note: str | None, **extra: Any
) -> Contact:
    session.add(c)
    session.flush()  # the entry rule (states/text.py) checks the name and the address here
    assert c.id is not None
    engine.record_change(
        session,
        "contact",
        c.id,
        "add_contact",
        principal=principal,
        role=role,
        clock=clock,
        state="current",
        note=note,
        data={**_fields(c), "from": c.valid_from, **extra},
    )
    _forget(session)
    return c


def _fields(c: Contact) -> dict[str, Any]:
    return {
        "role": c.role,
        "name": c.name,
        "email": c.email,
        "service_id": c.service_id,
        "organisation_id": c.organisation_id,
        "network_id": c.network_id,
    }


def _seen(c: Contact) -> dict[str, Any]:
    """What a proposal saw of its contact: a confirmation finding it different is stale."""
    seen = {"name": c.name, "email": c.email, "valid_from": c.valid_from, "valid_until": c.valid_until}
    return cast(dict[str, Any], jsonable(seen))


def _check_open(session: Session, c: Contact, effective: date) -> None:
    """Refuse a change to a contact already replaced or retired, or from before it starts."""
    if c.valid_until is not None:
        succ = session.exec(select(Contact.id).where(Contact.replaces_id == c.id)).first()
        how = f"replaced by contact {succ}" if succ else "retired"
        raise InvalidInput(
            f"contact {c.id} ({c.name}, {CONTACT_ROLES.get(c.role, c.role)}) is already {how} from "
            f"{c.valid_until.isoformat()}: change the current holder instead (peerwatch contact history {c.id})"
        )
    if c.valid_from is not None and effective < c.valid_from:
        raise InvalidInput(
            f"effective date {effective.isoformat()} is before contact {c.id} starts "
            f"({c.valid_from.isoformat()}): give a date on or after it"
        )


def close_contact(session: Session, c: Contact, effective: date, today: date) -> None:
    """Close ``c`` at ``effective``, unless someone else closed it meanwhile (then StaleVersion).

    Public as a test seam: tests call it on a stale copy to show the guarded UPDATE."""
    _check_open(session, c, effective)
    done = cast(
        CursorResult[Any],
        session.execute(
            update(_CONTACT)
            .where(_CONTACT.c.id == c.id, _CONTACT.c.valid_until.is_(None))
            .values(valid_until=effective)
        ),
    )
    if done.rowcount != 1:
        raise StaleVersion(f"contact {c.id} was changed by someone else meanwhile: show it again and retry")
    session.refresh(c)


def edit_contact(
    session: Session,
    contact_id: int,
    *,
    name: str | None = None,
    email: str | None = None,
    effective: date,
    principal: Principal,
    clock: Clock,
    note: str | None = None,
) -> Change:
    """From ``effective`` letters go to the contact as edited: the row is closed at that date and
    its successor written from it (same role and level), both audited. An escalation address is
    only proposed (``Change.pending``). The caller commits."""
    old = get_contact(session, contact_id)
    changes = {k: v for k, v in (("name", name), ("email", email)) if v is not None and v != getattr(old, k)}
    if not changes:
        raise InvalidInput(f"nothing to change on contact {contact_id}: give a new name or email, or both")
    acting = may_change(session, principal, old, f"change contact {contact_id}")
    if old.role in ESCALATION_ROLES:
        _check_open(session, old, effective)
        check_row(Contact(role=old.role, name=changes.get("name", old.name), email=changes.get("email", old.email)))
        was_now = {k: {"was": getattr(old, k), "now": v} for k, v in changes.items()}
        payload = {"role": old.role, "from": effective, "changes": was_now, "seen": _seen(old)}
        pc = pending_changes.propose(
            session, "contact", "edit", old.id, payload, principal=principal, role=acting, clock=clock, note=note
        )
        return Change(row=old, pending=pc)
    return _replace(session, old, changes, effective, principal, acting, clock, note)


def _replace(
    session: Session,
    old: Contact,
    changes: Mapping[str, Any],
    effective: date,
    principal: Principal,
    role: str,
    clock: Clock,
    note: str | None,
    **extra: Any,
) -> Change:
    close_contact(session, old, effective, _today(clock))
    new = Contact(
        role=old.role,
        name=changes.get("name", old.name),
        email=changes.get("email", old.email),
        service_id=old.service_id,
        organisation_id=old.organisation_id,
        network_id=old.network_id,
        valid_from=effective,
        replaces_id=old.id,
    )
    session.add(new)
    session.flush()
    ended = end_contact_grants(session, old, effective, principal, role, clock, successor=new)
    if ended:  # portal access made from the old row ends with it (the same email carries it on)
        extra = {**extra, "grants_ended": ended}
    data = {"from": effective, "changes": {k: {"was": getattr(old, k), "now": v} for k, v in changes.items()}, **extra}
    assert old.id is not None and new.id is not None
    engine.record_change(
        session,
        "contact",
        old.id,
        "replace_contact",
        principal=principal,
        role=role,
        clock=clock,
        from_state="current",
        state="replaced",
        note=note,
        data={**data, "successor": new.id},
    )
    engine.record_change(
        session,
        "contact",
        new.id,
        "succeed_contact",
        principal=principal,
        role=role,
        clock=clock,
        state="current",
        note=note,
        data={**data, **_fields(new), "replaces": old.id},
    )
    _forget(session)
    return Change(row=new, replaced=old)


def retire_contact(
    session: Session,
    contact_id: int,
    *,
    effective: date,
    principal: Principal,
    clock: Clock,
    note: str | None = None,
) -> Change:
    """From ``effective`` the contact receives no letters; audited. Warns when nobody else then
    holds the role at that level or above (letters for it would be undeliverable incidents).
    An escalation address is only proposed (``Change.pending``)."""
    c = get_contact(session, contact_id)
    acting = may_change(session, principal, c, f"retire contact {contact_id}")
    if c.role in ESCALATION_ROLES:
        _check_open(session, c, effective)
        payload = {"from": effective, **_fields(c), "seen": _seen(c)}
        pc = pending_changes.propose(
            session, "contact", "retire", c.id, payload, principal=principal, role=acting, clock=clock, note=note
        )
        return Change(row=c, pending=pc)
    return _retire(session, c, effective, principal, acting, clock, note)


def _retire(
    session: Session,
    c: Contact,
    effective: date,
    principal: Principal,
    role: str,
    clock: Clock,
    note: str | None,
    **extra: Any,
) -> Change:
    close_contact(session, c, effective, _today(clock))
    assert c.id is not None
    ended = end_contact_grants(session, c, effective, principal, role, clock)
    if ended:  # portal access made from the contact ends on the same day
        extra = {**extra, "grants_ended": ended}
    engine.record_change(
        session,
        "contact",
        c.id,
        "retire_contact",
        principal=principal,
        role=role,
        clock=clock,
        from_state="current",
        state="retired",
        note=note,
        data={"from": effective, **_fields(c), **extra},
    )
    _forget(session)
    scope = {"service_id": c.service_id, "organisation_id": c.organisation_id, "network_id": c.network_id}
    out = Change(row=c)
    if not resolve(session, c.role, scope, effective):
        out.warnings.append(
            f"from {effective.isoformat()} nobody holds the role {CONTACT_ROLES.get(c.role, c.role)} here: "
            "its letters will be undeliverable incidents until a successor is added (a new contact that replaces this one)"
        )
    return out


# ------------------------------------------------------------------ four eyes: confirm, withdraw


def _target(session: Session, pc: PendingChange) -> Contact:
    """The contact a change is about: the row to be added (not yet in the session), or its target."""
    if pc.action == "add":
        p = pc.payload
        when = parse_date(p["from"], "date") if p.get("from") else None
        return Contact(
            role=p["role"],
            name=p["name"],
            email=p["email"],
            service_id=p.get("service_id"),
            organisation_id=p.get("organisation_id"),
            network_id=p.get("network_id"),
            valid_from=when,
        )
    assert pc.target_id is not None
    c = get_contact(session, pc.target_id)
    session.refresh(c)  # as stored now, not as this session last saw it: a stale confirmation is refused
    return c


def confirm_change(
    session: Session, change_id: int, *, principal: Principal, clock: Clock, note: str | None = None
) -> Change:
    """A second person confirms a proposed change to an escalation address: applied now, in this
    transaction, audited ("confirm" on the change, then the contact's own change with who
    proposed it). Refused for the account that proposed it, and when the contact changed since.
    The caller commits."""
    pc = pending_changes.get_change(session, change_id, "contact")
    pending_changes.check_confirmer(pc, principal)
    c = _target(session, pc)
    acting = may_change(session, principal, c, f"confirm change {change_id}")
    if pc.action != "add" and _seen(c) != pc.payload.get("seen"):
        raise StaleVersion(
            f"contact {c.id} changed since change {change_id} was proposed: it was not applied and nothing was "
            f"changed (peerwatch contact withdraw {change_id}, then propose it again)"
        )
    pending_changes.take(session, pc, principal=principal, role=acting, clock=clock, note=note)
    extra = {"change": pc.id, "proposed_by": pc.proposed_by, "proposed_name": pc.proposed_name}
    if pc.action == "add":
        out = Change(row=_insert(session, c, principal, acting, clock, note, **extra))
    else:
        effective = parse_date(pc.payload["from"], "date")
        if pc.action == "edit":
            now = {k: v["now"] for k, v in pc.payload["changes"].items()}
            out = _replace(session, c, now, effective, principal, acting, clock, note, **extra)
        else:
            out = _retire(session, c, effective, principal, acting, clock, note, **extra)
    out.pending = pc
    return out


def withdraw_change(
    session: Session, change_id: int, *, principal: Principal, clock: Clock, note: str | None = None
) -> PendingChange:
    """The account that proposed a change drops it (audited); nothing else changes."""
    pc = pending_changes.get_change(session, change_id, "contact")
    acting = may_change(session, principal, _target(session, pc), f"withdraw change {change_id}")
    return pending_changes.withdraw(session, pc, principal=principal, role=acting, clock=clock, note=note)


# ------------------------------------------------------------------ history


def lineage(session: Session, contact_id: int) -> list[Contact]:
    """The contact, the rows it replaced and those that replaced it, oldest first."""
    c = get_contact(session, contact_id)
    chain = [c]
    seen = {c.id}
    while chain[0].replaces_id is not None and chain[0].replaces_id not in seen:
        prev = session.get(Contact, chain[0].replaces_id)
        if prev is None:
            break
        seen.add(prev.id)
        chain.insert(0, prev)
    while True:
        nxt = session.exec(select(Contact).where(Contact.replaces_id == chain[-1].id).order_by(col(Contact.id))).first()
        if nxt is None or nxt.id in seen:
            break
        seen.add(nxt.id)
        chain.append(nxt)
    for a, b in zip(chain, chain[1:]):
        a._successor = b.id
    return chain


def describe(data: dict[str, Any]) -> str:
    """An audited change's data in one line, for people."""
    parts = [f"change: {data['action']}"] if data.get("kind") == "contact" and data.get("action") else []
    parts += [f"from {data['from']}"] if data.get("from") else []
    for k, v in (data.get("changes") or {}).items():
        parts.append(f"{k}: {v.get('was')} -> {v.get('now')}")
    if data.get("successor"):
        parts.append(f"successor: contact {data['successor']}")
    if data.get("replaces"):
        parts.append(f"replaces contact {data['replaces']}")
    if not data.get("changes") and data.get("name"):
        parts.append(f"{data['name']} <{data.get('email')}>")
    if data.get("proposed_name"):
        parts.append(f"change {data.get('change')} proposed by {data['proposed_name']}")
    return "; ".join(parts)


def contact_history(session: Session, contact_id: int) -> tuple[list[Contact], list[AuditEvent]]:
    """The holders, and every audited change to them (proposals of changes to them among them)."""
    rows = lineage(session, contact_id)
    ids = [r.id for r in rows]
    proposed = session.exec(
        select(PendingChange.id).where(PendingChange.kind == "contact", col(PendingChange.target_id).in_(ids))
    ).all()
    events = engine.changes(session, "contact", ids)  # type: ignore[arg-type]
    if proposed:
        events += engine.changes(session, pending_changes.KIND, [i for i in proposed if i is not None])
    return rows, sorted(events, key=lambda e: e.id or 0)


# ------------------------------------------------------------------ escalation addresses in the views


ESCALATION_WINDOW_ENV = "PEERWATCH_ESCALATION_CHANGES_DAYS"


def escalation_window_days() -> int:
    """How far back the views show escalation address changes (local policy, default 30 days)."""
    raw = os.environ.get(ESCALATION_WINDOW_ENV, "30")
    try:
        days = int(raw)
    except ValueError:
        raise InvalidInput(f"{ESCALATION_WINDOW_ENV}={raw!r}: give a whole number of days") from None
    if not 1 <= days <= 3660:
        raise InvalidInput(f"{ESCALATION_WINDOW_ENV}={days}: give 1 to 3660 days")
    return days


def escalation_contacts(session: Session, today: date, days: int = 30) -> list[dict[str, Any]]:
    """Changes to where escalations go (``ESCALATION_ROLES``) recorded in the last ``days`` days
    or taking effect from today on, and those still awaiting a second person: what, from when,
    by whom (``states.views.directory.escalation_changes``)."""
    return escalation_changes(session, today, days, ESCALATION_ROLES)


__all__ = [
    "EDITORS",
    "ESCALATION_ROLES",
    "REVIEWER_FIELDS",
    "Change",
    "add_contact",
    "add_reviewer",
    "confirm_change",
    "contact_history",
    "edit_contact",
    "edit_reviewer",
    "escalation_contacts",
    "get_reviewer",
    "lineage",
    "may_change",
    "retire_contact",
    "retire_reviewer",
    "reviewer_history",
    "status",
    "withdraw_change",
]
