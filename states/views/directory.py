"""The reference data as the operator looks it up: networks, Trusts, services, contacts, reviewers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from models import AuditEvent, Contact, Milestone, Network, Organisation, RefusedAttempt, Reviewer, Service
from models.accounts import PendingChange
from models.types import is_row_id
from states.clock import local_date
from states.errors import NotFound
from states.roles import CONTACT_ROLES


def network_by_code(session: Session, code: str) -> Network:
    """The network with this code, or NotFound naming the command that lists them."""
    net = session.exec(select(Network).where(Network.code == code)).first()
    if net is None:
        raise NotFound(f"network {code!r} not found (peerwatch network list)")
    return net


def organisation_by_name(session: Session, name: str) -> Organisation:
    """The Trust with this name, or NotFound naming the command that lists them."""
    org = session.exec(select(Organisation).where(Organisation.name == name)).first()
    if org is None:
        raise NotFound(f"organisation {name!r} not found (peerwatch service list)")
    return org


def service_by_id(session: Session, service_id: int, hint: str = " (peerwatch service list)") -> Service:
    """The service with this id, or NotFound."""
    svc = session.get(Service, service_id) if is_row_id(service_id) else None
    if svc is None:
        raise NotFound(f"service {service_id} not found{hint}")
    return svc


def networks_or_one(session: Session, code: str | None = None) -> list[Network]:
    """The network with this code, or every network by id."""
    if code:
        return [network_by_code(session, code)]
    return list(session.exec(select(Network).order_by(col(Network.id))))


def networks(session: Session) -> list[tuple[Any, ...]]:
    """id, code, name, cycle of every network."""
    return [(n.id, n.code, n.name, n.cycle) for n in session.exec(select(Network).order_by(col(Network.id)))]


def services(session: Session) -> list[tuple[Any, ...]]:
    """id, name, kind, Trust, nation, network code of every service."""
    q = select(Service, Organisation, Network).join(Organisation).join(Network).order_by(col(Service.id))
    return [(sv.id, sv.name, sv.kind, o.name, o.nation, n.code) for sv, o, n in session.exec(q)]


def contacts(session: Session, today: date, every: bool = False) -> list[Contact]:
    """Contacts in force today (``every``: with retired, replaced and future ones)."""
    q = select(Contact).order_by(col(Contact.id))
    if not every:
        q = q.where(
            or_(col(Contact.valid_from).is_(None), col(Contact.valid_from) <= today),
            or_(col(Contact.valid_until).is_(None), col(Contact.valid_until) > today),
        )
    return list(session.exec(q))


def pending_contact_changes(session: Session, every: bool = False) -> list[PendingChange]:
    """Changes to contacts waiting for a second person (``every``: also confirmed and withdrawn ones), by id."""
    q = select(PendingChange).where(PendingChange.kind == "contact").order_by(col(PendingChange.id))
    if not every:
        q = q.where(PendingChange.status == "pending")
    return list(session.exec(q))


def _who(c: Contact | None, data: dict[str, Any]) -> str:
    if c is None:
        return f"{data.get('name')} <{data.get('email')}>"
    return f"{c.name} <{c.email}>"


def escalation_changes(session: Session, today: date, days: int, roles: Iterable[str]) -> list[dict[str, Any]]:
    """Changes to contacts holding one of ``roles`` (where escalations go) recorded in the last
    ``days`` days, then those proposed and still waiting for a second person: what changed,
    from when, by whom (states/services/contacts.py ``escalation_contacts``)."""
    roles = tuple(roles)
    since = datetime.combine(today - timedelta(days=days), time(), tzinfo=UTC)
    events = list(
        session.exec(
            select(AuditEvent)
            .where(AuditEvent.kind == "contact", col(AuditEvent.at) >= since)
            .order_by(col(AuditEvent.id))
        )
    )
    ids = sorted({e.item_id for e in events})
    waiting = pending_contact_changes(session)
    targets = {p.target_id for p in waiting if p.target_id is not None}
    wanted = [*ids, *targets]
    rows = (
        {
            c.id: c
            for c in session.exec(select(Contact).where(col(Contact.id).in_(wanted), col(Contact.role).in_(roles)))
        }
        if wanted
        else {}
    )
    nets = {n.id: n.code for n in session.exec(select(Network))}

    def network(c: Contact | None, data: dict[str, Any]) -> str:
        net = c.network_id if c is not None else data.get("network_id")
        return "national" if net is None else nets.get(net, "")

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
            now = _who(c, {})
        by = f"{e.actor} ({e.role})"
        if e.data.get("proposed_name"):
            by += f", proposed by {e.data['proposed_name']} (change {e.data.get('change')})"
        out.append(
            {
                "network": network(c, {}),
                "role": CONTACT_ROLES.get(c.role, c.role),
                "change": what,
                "was": "" if e.trigger == "add_contact" else _who(c, {}),
                "now": now,
                "from": str(effective),
                "in_force": "yes" if str(effective) <= today.isoformat() else "not yet",
                "by": by,
                "recorded": local_date(e.at).isoformat(),
            }
        )
    for p in waiting:
        c = rows.get(p.target_id) if p.target_id is not None else None
        role = c.role if c is not None else p.payload.get("role")
        if role not in roles or (p.target_id is not None and c is None):
            continue
        changes = p.payload.get("changes") or {}
        now = {"add": _who(None, p.payload), "retire": ""}.get(
            p.action,
            f"{changes.get('name', {}).get('now', c.name if c else '')} "
            f"<{changes.get('email', {}).get('now', c.email if c else '')}>",
        )
        out.append(
            {
                "network": network(c, p.payload),
                "role": CONTACT_ROLES.get(str(role), str(role)),
                "change": f"{p.action} proposed (change {p.id})",
                "was": "" if p.action == "add" else _who(c, {}),
                "now": now,
                "from": str(p.payload.get("from") or "at once"),
                "in_force": "no: awaits a second person",
                "by": p.proposed_name,
                "recorded": local_date(p.proposed_at).isoformat(),
            }
        )
    return out


def reviewers(session: Session) -> list[Reviewer]:
    """Every reviewer in the pool, by id."""
    return list(session.exec(select(Reviewer).order_by(col(Reviewer.id))))


def refused_attempts(session: Session, limit: int = 50) -> list[RefusedAttempt]:
    """The latest refused attempts, newest first."""
    return list(session.exec(select(RefusedAttempt).order_by(col(RefusedAttempt.id).desc()).limit(limit)))


def milestones(
    session: Session, today: date, risk_id: int | None = None, open_only: bool = False
) -> list[dict[str, Any]]:
    """Action plan milestones by due date, with owner, whether done, chased, and overdue ``today``."""
    q = select(Milestone).order_by(col(Milestone.due_on), col(Milestone.id))
    if risk_id is not None:
        q = q.where(Milestone.risk_id == risk_id)
    if open_only:
        q = q.where(col(Milestone.done_on).is_(None))
    return [
        {
            "id": m.id,
            "risk": m.risk_id,
            "due_on": m.due_on,
            "text": m.text,
            "owner": m.owner_role,
            "done_on": m.done_on,
            "done_by": m.done_by,
            "chased_on": m.chased_on,
            "overdue": m.done_on is None and m.due_on < today,
        }
        for m in session.exec(q)
    ]


def place_names(session: Session) -> dict[str, dict[int, str]]:
    """Every service's and Trust's name and network's code, by id (to label where rows sit)."""
    return {
        "service": {x.id: x.name for x in session.exec(select(Service)) if x.id is not None},
        "organisation": {x.id: x.name for x in session.exec(select(Organisation)) if x.id is not None},
        "network": {x.id: x.code for x in session.exec(select(Network)) if x.id is not None},
    }


def where_label(row: Contact | Reviewer, names: dict[str, dict[int, str]]) -> str:
    """Where a contact or reviewer sits, for people: its service, else its Trust and network,
    else "national"."""
    service_id = getattr(row, "service_id", None)
    if service_id:
        return f"service: {names['service'].get(service_id, service_id)}"
    parts = []
    if row.organisation_id:
        parts.append(f"Trust: {names['organisation'].get(row.organisation_id, row.organisation_id)}")
    if row.network_id:
        parts.append(f"network: {names['network'].get(row.network_id, row.network_id)}")
    return ", ".join(parts) or "national"


def matches(q: str, *texts: object) -> bool:
    """Does the search ``q`` (already lower-cased; empty: everything) occur in ``texts`` joined?"""
    return not q or q in " ".join(str(t) for t in texts).lower()


def page_of(rows: list[Any], page: int, per_page: int) -> dict[str, Any]:
    """One page of ``rows`` (a page past the last: the last), with the count and number of pages."""
    pages = max(1, -(-len(rows) // per_page))
    page = min(max(1, page), pages)
    return {"rows": rows[(page - 1) * per_page : page * per_page], "total": len(rows), "page": page, "pages": pages}
