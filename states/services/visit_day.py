"""A visit day as the operator prints or sends it: the SOP schedule, who attends, who organises."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlmodel import Session

from models import Network, Service, Visit
from models.installation import installation_id
from states import engine
from states.engine.letters import resolve
from states.machines.visit import agenda, panel
from states.scope import recipient_scope, service_of


@dataclass
class VisitDay:
    """A visit day: its sessions from the SOP schedule, who attends, who organises it."""

    visit: Visit
    service: Service
    network: Network
    sessions: list[dict[str, Any]]
    people: list[dict[str, str]]
    organizer: dict[str, str] | None
    installation: str | None


def visit_day(session: Session, visit_id: int, today: date, calendar: bool = False) -> VisitDay:
    """The visit day: sessions (walk-around dropped when virtual), the panel and the service's
    leads as attendees, the network office as organiser, as of ``today`` (contacts' dates);
    ``calendar``: with this installation's id, for the calendar's event UIDs."""
    _, visit = engine.load(session, "visit", visit_id)
    assert isinstance(visit, Visit)
    sessions = agenda(visit)
    svc, _org, net = service_of(session, visit.service_id)
    people = [{"name": r.name, "email": r.email, "group": "panel"} for _m, r in panel(session, visit_id)]
    scope = recipient_scope(session, visit)
    people += [
        {"name": c.name, "email": c.email, "group": "service"}
        for role in ("service-lead", "chief-executive")
        for c in resolve(session, role, scope, today)
    ]
    office = resolve(session, "network-office", scope, today)  # the ORGANIZER
    organizer = {"name": f"{net.name} ({office[0].name})", "email": office[0].email} if office else None
    return VisitDay(visit, svc, net, sessions, people, organizer, installation_id(session) if calendar else None)
