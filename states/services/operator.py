"""The reference data the operator adds at the command line: networks, Trusts, services and
reviewers. Each runs in the caller's transaction and is audited through the engine."""

from __future__ import annotations

from sqlmodel import Session, select

from models import Network, Organisation, Reviewer, Service
from states import engine
from states.calendar import NATIONS
from states.clock import Clock
from states.errors import InvalidInput
from states.machines.visit import DISCIPLINES
from states.services.contacts import add_reviewer as add_reviewer_row
from states.views.directory import network_by_code, organisation_by_name

CYCLES = ("annual", "biennial")


def add_network(session: Session, code: str, name: str, cycle: str, *, actor: str, role: str, clock: Clock) -> Network:
    """A new network (audited)."""
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
        actor=actor,
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
    actor: str,
    role: str,
    clock: Clock,
) -> Service:
    """A new service run by a Trust (the Trust is added, audited, if new) in a network (audited)."""
    nation = check_nation(nation)
    net = network_by_code(session, network)
    org = session.exec(select(Organisation).where(Organisation.name == organisation)).first()
    if org is None:
        org = Organisation(name=organisation, nation=nation)
        session.add(org)
        session.flush()
        engine.record_change(
            session,
            "organisation",
            org.id,  # type: ignore[arg-type]
            "add_organisation",
            actor=actor,
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
        actor=actor,
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
    actor: str,
    role: str,
    clock: Clock,
) -> Reviewer:
    """A reviewer joins the pool (audited)."""
    if discipline not in DISCIPLINES:
        raise InvalidInput(f"discipline {discipline!r}: use one of {', '.join(DISCIPLINES)}")
    r = Reviewer(name=name, email=email, discipline=discipline, pathways=list(pathways), trained=trained)
    if organisation:
        r.organisation_id = organisation_by_name(session, organisation).id
    if network:
        r.network_id = network_by_code(session, network).id
    return add_reviewer_row(session, r, actor=actor, actor_role=role, clock=clock)
