"""Who may change the reference data people keep (contacts, reviewers), and what a change returns.

Network staff (network office, Network Manager, Regional Network Lead, operator) change them,
each in the scope a grant gives it: the row's service, its Trust (in any network the Trust has
services in), its network; a national row needs an installation-wide grant. Auditors and
administrators may not (``states/services/contacts.py``, ``states/services/reviewers.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select

from models.accounts import PendingChange
from models.tables import Contact, Reviewer, Service
from models.types import is_row_id
from states.errors import NotFound, PermissionDenied
from states.principal import Principal
from states.roles import NETWORK_MANAGER, NETWORK_OFFICE, OPERATOR, REGIONAL_LEAD

EDITORS = (NETWORK_OFFICE, NETWORK_MANAGER, REGIONAL_LEAD, OPERATOR)


@dataclass
class Change:
    """What a change did: the contact (or reviewer) now in force from the date, and warnings.
    ``pending``: the change waits for a second person (``row`` is then the contact unchanged)."""

    row: Any
    replaced: Any | None = None
    warnings: list[str] = field(default_factory=list)
    pending: PendingChange | None = None


def in_range(item_id: int, what: str) -> None:
    """NotFound for an id no database column can hold (not a crash)."""
    if not is_row_id(item_id):
        raise NotFound(f"{what} {item_id} not found")


def places(session: Session, row: Contact | Reviewer) -> list[dict[str, int | None]]:
    """The scopes a row sits in, as ``Grant.covers`` reads them: its service (with its Trust and
    network), its Trust in each network the Trust has services in, its network, or none at all
    (national: installation-wide grants only)."""
    service_id = getattr(row, "service_id", None)
    org, net = row.organisation_id, row.network_id
    if service_id is not None:
        svc = session.get(Service, service_id)
        if svc is not None:
            return [{"service_id": svc.id, "organisation_id": svc.organisation_id, "network_id": svc.network_id}]
    if org is not None and net is None:
        nets = session.exec(select(Service.network_id).where(Service.organisation_id == org).distinct()).all()
        return [{"organisation_id": org, "network_id": n} for n in sorted(nets)] or [{"organisation_id": org}]
    return [{"service_id": None, "organisation_id": org, "network_id": net}]


def may_change(session: Session, principal: Principal, row: Contact | Reviewer, what: str) -> str:
    """The role ``principal`` changes ``row`` in: one of ``EDITORS`` held in its scope;
    refused (PermissionDenied, nothing changed) otherwise."""
    refused: PermissionDenied | None = None
    for where in places(session, row):
        try:
            return principal.require_any(EDITORS, what, where)
        except PermissionDenied as exc:
            refused = refused or exc
    assert refused is not None
    raise refused


__all__ = ["EDITORS", "Change", "in_range", "may_change", "places"]
