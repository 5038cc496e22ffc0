"""Which maternity service a CQC rating or an MSSP referral is about."""

from __future__ import annotations

from sqlmodel import Session

from models import Organisation, Service
from states.errors import InvalidInput
from states.machines.mssp import maternity_service
from states.views.directory import service_by_id


def maternity_service_of(session: Session, org: Organisation, service: int | None) -> Service | None:
    """The service named (it must be run by the Trust), else the Trust's one maternity service, if any."""
    if service is None:
        return maternity_service(session, org.id)  # type: ignore[arg-type]
    svc = service_by_id(session, service, "")
    if svc.organisation_id != org.id:
        raise InvalidInput(f"service {service} ({svc.name}) is not run by {org.name}")
    return svc
