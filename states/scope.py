"""Where an item sits: its service, Trust and network. Shared by every kind with a service_id."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from models.tables import Network, Organisation, Service
from states.errors import NotFound


def service_of(session: Session, service_id: int) -> tuple[Service, Organisation, Network]:
    """The service, its Trust and network; cached for the session (sweeps look them up often)."""
    cache: dict[int, tuple[Service, Organisation, Network]] = session.info.setdefault("service_cache", {})
    hit = cache.get(service_id)
    if hit is None:
        svc = session.get(Service, service_id)
        if svc is None:
            raise NotFound(f"service {service_id} not found")
        org = session.get(Organisation, svc.organisation_id)
        net = session.get(Network, svc.network_id)
        if org is None or net is None:  # the foreign keys make this impossible
            raise NotFound(f"service {service_id} has no Trust or network")
        hit = cache[service_id] = (svc, org, net)
    return hit


def nation_of(session: Session, row: Any) -> str:
    return service_of(session, row.service_id)[1].nation


def recipient_scope(session: Session, row: Any) -> dict[str, int | None]:
    svc, org, net = service_of(session, row.service_id)
    return {"service_id": svc.id, "organisation_id": org.id, "network_id": net.id}


def service_context(session: Session, row: Any) -> dict[str, Any]:
    svc, org, net = service_of(session, row.service_id)
    return {
        "service": {"name": svc.name, "kind": svc.kind},
        "organisation": {"name": org.name},
        "network": {"name": net.name, "code": net.code},
    }
