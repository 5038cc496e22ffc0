"""The reference data the operator adds at the command line: networks, Trusts, services and
reviewers. Each runs in the caller's transaction and is audited through the engine.

Who may add a network, Trust or service: network staff or an administrator whose grant reaches
the place the new row sits (a network or a Trust needs an installation-wide grant, a service
its network's). Reviewers: ``states/services/reviewers.py`` decides."""

from __future__ import annotations

from sqlmodel import Session, select

from models import Network, Organisation, Reviewer, Service
from states import engine
from states.calendar import NATIONS
from states.clock import Clock
from states.errors import InvalidInput
from states.machines.visit import DISCIPLINES
from states.principal import Principal
from states.roles import ADMINISTRATOR, STAFF
from states.services.contacts import add_reviewer as add_reviewer_row
from states.views.directory import network_by_code, organisation_by_name

CYCLES = ("annual", "biennial")
EDITORS = sorted({*STAFF, ADMINISTRATOR})  # reference data, not a clinical act


def _in_network(network_id: int | None) -> dict[str, int | None]:
    return {"service_id": None, "organisation_id": None, "network_id": network_id}


def add_network(session: Session, code: str, name: str, cycle: str, *, principal: Principal, clock: Clock) -> Network:
    """A new network (audited)."""
    role = principal.require_any(EDITORS, "add a network")
    if cycle not in CYCLES:
        raise InvalidInput(f"cycle {cycle!r}: use annual or biennial")
    n = Network(code=code, name=name, cycle=cycle)
    session.add(n)
    session.flush()
    engine.record_change(
        session,
        "network",
        n.id,  # type: ignore[arg-type]
        "add_network",
        principal=principal,
        role=role,
        clock=clock,
        state="current",
        data={"code": code, "name": name, "cycle": cycle},
    )
    return n


def check_nation(nation: str) -> str:
    """The nation's code (ENG, WLS, SCT, NIR), or InvalidInput."""
    if nation.upper() not in NATIONS:
        raise InvalidInput(f"unknown nation {nation!r}: use one of {', '.join(NATIONS)}")
    return nation.upper()


def add_service(
    session: Session,
    *,
    name: str,
    kind: str,
    organisation: str,
    network: str,
    nation: str,
    pathway: str | None,
    principal: Principal,
    clock: Clock,
) -> Service:
    """A new service run by a Trust (the Trust is added, audited, if new) in a network (audited)."""
    nation = check_nation(nation)
    net = network_by_code(session, network)
    org = session.exec(select(Organisation).where(Organisation.name == organisation)).first()
    where = _in_network(net.id) | {"organisation_id": org.id if org is not None else None}
    role = principal.require_any(EDITORS, f"add a service to {net.code}", where)
    if org is None:
        role = principal.require_any(EDITORS, f"add the Trust {organisation!r}")
        org = Organisation(name=organisation, nation=nation)
        session.add(org)
        session.flush()
        engine.record_change(
            session,
            "organisation",
            org.id,  # type: ignore[arg-type]
            "add_organisation",
            principal=principal,
            role=role,
            clock=clock,
            state="current",
            data={"name": organisation, "nation": nation},
        )
    svc = Service(name=name, kind=kind, organisation_id=org.id, network_id=net.id, pathway=pathway)  # type: ignore[arg-type]
    session.add(svc)
    session.flush()
    engine.record_change(
        session,
        "service",
        svc.id,  # type: ignore[arg-type]
        "add_service",
        principal=principal,
        role=role,
        clock=clock,
        state="current",
        data={"name": name, "kind": kind, "organisation": organisation, "network": network, "pathway": pathway},
    )
    return svc


def add_reviewer(
    session: Session,
    *,
    name: str,
    email: str,
    discipline: str,
    organisation: str | None,
    network: str | None,
    pathways: list[str],
    trained: bool,
    principal: Principal,
    clock: Clock,
) -> Reviewer:
    """A reviewer joins the pool (audited; who may is ``states/services/reviewers.py``'s rule)."""
    if discipline not in DISCIPLINES:
        raise InvalidInput(f"discipline {discipline!r}: use one of {', '.join(DISCIPLINES)}")
    r = Reviewer(name=name, email=email, discipline=discipline, pathways=list(pathways), trained=trained)
    if organisation:
        r.organisation_id = organisation_by_name(session, organisation).id
    if network:
        r.network_id = network_by_code(session, network).id
    return add_reviewer_row(session, r, principal=principal, clock=clock)
