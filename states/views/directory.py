"""The reference data as the operator looks it up: networks, Trusts, services, contacts, reviewers."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from models import Contact, Milestone, Network, Organisation, RefusedAttempt, Reviewer, Service
from states.errors import NotFound


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
    svc = session.get(Service, service_id)
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
