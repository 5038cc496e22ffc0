"""The contacts database and the reviewer pool, changed by people: added, edited, retired, audited.

A contact is a person holding a role at a level (service, Trust, network, national) for a
span of days: from ``valid_from`` (None: always) until the day before ``valid_until`` (None:
still in force). Letters go to the holders in force on the clock's date
(``states.engine.letters.resolve``). An edit never overwrites: it closes the row at the
effective date and writes its successor from that date (``replaces_id``), so who held the role
when is kept, and letters written before the date still name the person they went to. A
retirement closes the row at its date. Every change is an audit event on the one hash chain
(``states.engine.record_change``), with the actor and role.

Reviewers keep one row (panel memberships point at it): an edit applies when recorded and is
audited with what it changed; a retirement takes effect at its date (``retired_on``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlmodel import Session, col, select

from models.tables import AuditEvent, Contact, Network, Organisation, Reviewer, Service
from states import engine
from states.clock import Clock, local_date
from states.engine.letters import forget_recipients, resolve
from states.errors import InvalidInput, MissingActor, NotFound, PermissionDenied, StaleVersion
from states.machines.visit import DISCIPLINES
from states.roles import AUDITOR, CONTACT_ROLES, check_actor_role, check_contact_role

# Where an escalation goes (000 s6): a change of one of these is shown in the views.
ESCALATION_ROLES = ("cqc", "commissioning-lead", "responsible-commissioner", "asct", "tpd", "ra")
_CONTACT = Contact.__table__  # type: ignore[attr-defined]
_REVIEWER = Reviewer.__table__  # type: ignore[attr-defined]


@dataclass
class Change:
    """What a change did: the contact (or reviewer) now in force from the date, and warnings."""

    row: Any
    replaced: Any | None = None
    warnings: list[str] = field(default_factory=list)


def _in_range(item_id: int, what: str) -> None:
    if not -(2**63) <= item_id < 2**63:
        raise NotFound(f"{what} {item_id} not found")


def get_contact(session: Session, contact_id: int) -> Contact:
    _in_range(contact_id, "contact")
    c = session.get(Contact, contact_id)
    if c is None:
        raise NotFound(f"contact {contact_id} not found (peerwatch contact list)")
    return c


def get_reviewer(session: Session, reviewer_id: int) -> Reviewer:
    _in_range(reviewer_id, "reviewer")
    r = session.get(Reviewer, reviewer_id)
    if r is None:
        raise NotFound(f"reviewer {reviewer_id} not found (peerwatch reviewer list)")
    return r


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
    actor: str,
    actor_role: str,
    clock: Clock,
    note: str | None = None,
) -> Contact:
    """A person holding ``role`` (from ``valid_from``, or at once); audited. The caller commits."""
    check_contact_role(role)
    c = Contact(role=role, name=name, email=email, valid_from=valid_from)
    if service_id is not None:
        _in_range(service_id, "service")
        svc = session.get(Service, service_id)
        if svc is None:
            raise NotFound(f"service {service_id} not found")
        c.service_id, c.organisation_id = svc.id, svc.organisation_id
    if organisation_id is not None:
        if session.get(Organisation, organisation_id) is None:
            raise NotFound(f"organisation {organisation_id} not found")
        c.organisation_id = organisation_id
    if network_id is not None:
        if session.get(Network, network_id) is None:
            raise NotFound(f"network {network_id} not found")
        c.network_id = network_id
    session.add(c)
    session.flush()  # the entry rule (states/text.py) checks the name and the address here
    assert c.id is not None
    engine.record_change(
        session,
        "contact",
        c.id,
        "add_contact",
        actor=actor,
        role=actor_role,
        clock=clock,
        state="current",
        note=note,
        data={**_fields(c), "from": valid_from},
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


def close_contact(session: Session, c: Contact, effective: date, today: date) -> None:
    """Close ``c`` at ``effective``, unless someone else closed it meanwhile (then StaleVersion).

    Public as a test seam: tests call it on a stale copy to show the guarded UPDATE."""
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
    actor: str,
    actor_role: str,
    clock: Clock,
    note: str | None = None,
) -> Change:
    """From ``effective`` letters go to the contact as edited: the row is closed at that date and
    its successor written from it (same role and level), both audited. The caller commits."""
    old = get_contact(session, contact_id)
    changes = {k: v for k, v in (("name", name), ("email", email)) if v is not None and v != getattr(old, k)}
    if not changes:
        raise InvalidInput(f"nothing to change on contact {contact_id}: give a new --name and/or --email")
    _check_actor(actor, actor_role)
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
    data = {"from": effective, "changes": {k: {"was": getattr(old, k), "now": v} for k, v in changes.items()}}
    assert old.id is not None
    engine.record_change(
        session,
        "contact",
        old.id,
        "replace_contact",
        actor=actor,
        role=actor_role,
        clock=clock,
        from_state="current",
        state="replaced",
        note=note,
        data={**data, "successor": new.id},
    )
    assert new.id is not None
    engine.record_change(
        session,
        "contact",
        new.id,
        "succeed_contact",
        actor=actor,
        role=actor_role,
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
    actor: str,
    actor_role: str,
    clock: Clock,
    note: str | None = None,
) -> Change:
    """From ``effective`` the contact receives no letters; audited. Warns when nobody else then
    holds the role at that level or above (letters for it would be undeliverable incidents)."""
    c = get_contact(session, contact_id)
    _check_actor(actor, actor_role)
    close_contact(session, c, effective, _today(clock))
    assert c.id is not None
    engine.record_change(
        session,
        "contact",
        c.id,
        "retire_contact",
        actor=actor,
        role=actor_role,
        clock=clock,
        from_state="current",
        state="retired",
        note=note,
        data={"from": effective, **_fields(c)},
    )
    _forget(session)
    scope = {"service_id": c.service_id, "organisation_id": c.organisation_id, "network_id": c.network_id}
    out = Change(row=c)
    if not resolve(session, c.role, scope, effective):
        out.warnings.append(
            f"from {effective.isoformat()} nobody holds the role {CONTACT_ROLES.get(c.role, c.role)} here: "
            "its letters will be undeliverable incidents until a successor is added (peerwatch contact add --from)"
        )
    return out


def _check_actor(actor: str, role: str) -> None:
    if not actor or not actor.strip():
        raise MissingActor("no actor given: name who is acting (--actor)")
    check_actor_role(role)
    if role == AUDITOR:
        raise PermissionDenied("role 'auditor' is read-only")


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
    parts = [f"from {data['from']}"] if data.get("from") else []
    for k, v in (data.get("changes") or {}).items():
        parts.append(f"{k}: {v.get('was')} -> {v.get('now')}")
    if data.get("successor"):
        parts.append(f"successor: contact {data['successor']}")
    if data.get("replaces"):
        parts.append(f"replaces contact {data['replaces']}")
    if not data.get("changes") and data.get("name"):
        parts.append(f"{data['name']} <{data.get('email')}>")
    return "; ".join(parts)


def contact_history(session: Session, contact_id: int) -> tuple[list[Contact], list[AuditEvent]]:
    rows = lineage(session, contact_id)
    return rows, engine.changes(session, "contact", [r.id for r in rows])  # type: ignore[misc]


# ------------------------------------------------------------------ reviewers

REVIEWER_FIELDS = ("name", "email", "discipline", "trained")


def add_reviewer(session: Session, reviewer: Reviewer, *, actor: str, actor_role: str, clock: Clock) -> Reviewer:
    session.add(reviewer)
    session.flush()
    assert reviewer.id is not None
    engine.record_change(
        session,
        "reviewer",
        reviewer.id,
        "add_reviewer",
        actor=actor,
        role=actor_role,
        clock=clock,
        state="current",
        data={
            "name": reviewer.name,
            "email": reviewer.email,
            "discipline": reviewer.discipline,
            "organisation_id": reviewer.organisation_id,
            "network_id": reviewer.network_id,
        },
    )
    return reviewer


def edit_reviewer(
    session: Session,
    reviewer_id: int,
    *,
    changes: dict[str, Any],
    effective: date,
    actor: str,
    actor_role: str,
    clock: Clock,
    note: str | None = None,
) -> Change:
    """Change a reviewer's name, address, discipline or training. Panel memberships point at the
    row, so the change applies when recorded: a future date is refused (record it then)."""
    r = get_reviewer(session, reviewer_id)
    _check_actor(actor, actor_role)
    today = _today(clock)
    if effective > today:
        raise InvalidInput(
            f"a reviewer's details change when recorded: {effective.isoformat()} is after today "
            f"({today.isoformat()}); record it on that date (--as-of)"
        )
    if r.retired_on is not None and r.retired_on <= today:
        raise InvalidInput(f"reviewer {reviewer_id} retired from {r.retired_on.isoformat()}")
    if "discipline" in changes and changes["discipline"] not in DISCIPLINES:
        raise InvalidInput(f"discipline {changes['discipline']!r}: use one of {', '.join(DISCIPLINES)}")
    diff = {k: v for k, v in changes.items() if k in REVIEWER_FIELDS and v is not None and v != getattr(r, k)}
    if not diff:
        raise InvalidInput(f"nothing to change on reviewer {reviewer_id}")
    was = {k: getattr(r, k) for k in diff}
    for k, v in diff.items():
        setattr(r, k, v)
    session.add(r)
    session.flush()  # the entry rule checks the new values here
    assert r.id is not None
    engine.record_change(
        session,
        "reviewer",
        r.id,
        "edit_reviewer",
        actor=actor,
        role=actor_role,
        clock=clock,
        from_state="current",
        state="current",
        note=note,
        data={"from": effective, "changes": {k: {"was": was[k], "now": v} for k, v in diff.items()}},
    )
    return Change(row=r)


def retire_reviewer(
    session: Session,
    reviewer_id: int,
    *,
    effective: date,
    actor: str,
    actor_role: str,
    clock: Clock,
    note: str | None = None,
) -> Change:
    r = get_reviewer(session, reviewer_id)
    _check_actor(actor, actor_role)
    if r.retired_on is not None:
        raise InvalidInput(f"reviewer {reviewer_id} is already retired from {r.retired_on.isoformat()}")
    done = cast(
        CursorResult[Any],
        session.execute(
            update(_REVIEWER)
            .where(_REVIEWER.c.id == r.id, _REVIEWER.c.retired_on.is_(None))
            .values(retired_on=effective)
        ),
    )
    if done.rowcount != 1:
        raise StaleVersion(f"reviewer {reviewer_id} was changed by someone else meanwhile: show it again and retry")
    session.refresh(r)
    assert r.id is not None
    engine.record_change(
        session,
        "reviewer",
        r.id,
        "retire_reviewer",
        actor=actor,
        role=actor_role,
        clock=clock,
        from_state="current",
        state="retired",
        note=note,
        data={"from": effective},
    )
    return Change(row=r)


def reviewer_history(session: Session, reviewer_id: int) -> tuple[Reviewer, list[AuditEvent]]:
    r = get_reviewer(session, reviewer_id)
    return r, engine.changes(session, "reviewer", [reviewer_id])


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
    """Changes to where escalations go (CQC, Commissioning Lead, commissioner, ASCT, TPD, RA)
    recorded in the last ``days`` days or taking effect from today on: what changed, from
    when, by whom."""
    since = datetime.combine(today - timedelta(days=days), time(), tzinfo=UTC)
    events = list(
        session.exec(
            select(AuditEvent)
            .where(AuditEvent.kind == "contact", col(AuditEvent.at) >= since)
            .order_by(col(AuditEvent.id))
        )
    )
    ids = sorted({e.item_id for e in events})
    rows = (
        {
            c.id: c
            for c in session.exec(
                select(Contact).where(col(Contact.id).in_(ids), col(Contact.role).in_(ESCALATION_ROLES))
            )
        }
        if ids
        else {}
    )
    nets = {n.id: n.code for n in session.exec(select(Network))}
    out = []
    for e in events:
        c = rows.get(e.item_id)
        if c is None or e.trigger == "succeed_contact":  # shown with the row it replaces
            continue
        effective = e.data.get("from") or local_date(e.at).isoformat()
        what = {"add_contact": "added", "replace_contact": "replaced", "retire_contact": "retired"}.get(
            e.trigger, e.trigger
        )
        now = ""
        if e.trigger == "replace_contact":
            succ = session.get(Contact, e.data.get("successor"))
            now = f"{succ.name} <{succ.email}>" if succ else ""
        elif e.trigger == "add_contact":
            now = f"{c.name} <{c.email}>"
        out.append(
            {
                "network": nets.get(c.network_id or -1, "national" if c.network_id is None else ""),
                "role": CONTACT_ROLES.get(c.role, c.role),
                "change": what,
                "was": "" if e.trigger == "add_contact" else f"{c.name} <{c.email}>",
                "now": now,
                "from": str(effective),
                "in_force": "yes" if str(effective) <= today.isoformat() else "not yet",
                "by": f"{e.actor} ({e.role})",
                "recorded": local_date(e.at).isoformat(),
            }
        )
    return out


__all__ = [
    "ESCALATION_ROLES",
    "add_contact",
    "add_reviewer",
    "contact_history",
    "edit_contact",
    "edit_reviewer",
    "escalation_contacts",
    "lineage",
    "retire_contact",
    "retire_reviewer",
    "reviewer_history",
    "status",
]
