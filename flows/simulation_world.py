"""The synthetic world of the workload simulation (``flows.simulation``): its settings and rates,
a fresh training database of its own, the networks, Trusts, services, contacts and reviewers,
built in bulk, and the cast: named accounts that act in it (``cast``)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from models.db import dispose_engine, init_db
from models.tables import Contact, Network, Organisation, Reviewer, Service
from states.clock import Clock
from states.errors import InvalidInput
from states.machines.visit import DISCIPLINES
from states.principal import NETWORK as NETWORK_SCOPE
from states.principal import Principal
from states.roles import CONTACT_ROLES, NETWORK_MANAGER, NETWORK_OFFICE, REGIONAL_LEAD
from states.services import accounts

SERVICE_KINDS = ("Major Trauma Centre", "Trauma Unit", "Burns", "Spine", "Adult Critical Care")
SERVICES_PER_TRUST = 10
# Where each contact role is held: per service, per Trust, nationally; every other role per network.
SERVICE_ROLES = (
    "service-lead",
    "lead-doctor",
    "lead-nurse",
    "ahp-lead",
    "service-manager",
    "divisional-manager",
    "divisional-director",
    "responsible-executive",
)
TRUST_ROLES = ("chief-executive", "medical-director")
NATIONAL_ROLES = (
    "national-medical-lead",
    "msscg",
    "jsog",
    "regional-chief-midwife",
    "regional-lead-obstetrician",
    "regional-chief-nurse",
)
NETWORK_ROLES = tuple(r for r in CONTACT_ROLES if r not in (*SERVICE_ROLES, *TRUST_ROLES, *NATIONAL_ROLES))


@dataclass(frozen=True)
class Rates:
    """How the synthetic people behave. Probabilities are per occasion; counts are means.

    Defaults are illustrative, not measured: change them to model a network's experience.
    """

    visit_phase_pattern: str = r"(formal )?peer review (visits|meetings)\b"  # how the title of a visit phase begins
    visit_share: float = 1.0  # share of services visited in each visit phase, top of the weighting list first
    visit_lead_working_days: int = 20  # earliest visit after the phase opens (time to build the panel)
    virtual_visit: float = 0.3  # visit held virtually rather than in person
    panel_size: int = 4  # reviewers invited per visit
    declaration_on_time: float = 0.85  # reviewer declares conflicts before the deadline (else chased)
    prep_session_held: float = 0.7  # the service takes up the preparation session
    ir_per_visit: float = 0.1  # mean immediate risks raised at high level feedback (Poisson)
    sc_per_visit: float = 0.3  # mean serious concerns
    gc_per_visit: float = 0.8  # mean general concerns
    doctors_in_training: float = 0.2  # an IR/SC affects doctors in training (TPD and RA on escalation)
    notification_on_time: float = 0.9  # formal IR/SC letter within 5 working days of the visit
    trust_on_time: float = 0.6  # Trust's formal response: adequate, before the deadline
    trust_late: float = 0.2  # after the deadline: chased, then answers adequately before escalation
    trust_inadequate: float = 0.15  # on time but inadequate: further response requested
    # the rest (0.05 by default) never answer: chased, then escalated
    second_response_adequate: float = 0.7  # after an inadequate response (else escalated)
    escalated_answer_working_days: tuple[int, int] = (10, 40)  # an escalated item is answered this long after
    monitoring_on_time: float = 0.85  # quarterly review recorded before it is due (else an overdue notice)
    reviews_before_close: tuple[int, int] = (1, 3)  # quarterly reviews before an IR/SC/GC is closed
    report_on_time: float = 0.8  # report sent for the factual accuracy check within 8 weeks
    accuracy_reply_on_time: float = 0.8  # the service replies to the accuracy check in time (else chased)
    inaccuracy_stated: float = 0.3  # the service states a factual inaccuracy
    inaccuracy_accepted: float = 0.5  # each of the two decisions accepts it
    standards_per_report: int = 3
    standard_unmet: float = 0.1
    standard_partially_met: float = 0.2
    appeal: float = 0.05  # a Chief Executive appeals a report that has grounds (an IR/SC or unmet standards)
    appeal_upheld: float = 0.3
    appeal_subgroup: float = 0.5  # the appeal goes to a subgroup (three independent members)
    appeal_decided_on_time: float = 0.9  # result within 8 weeks of submission (else chased)
    phase_on_time: float = 0.9  # programme phase completed by its due date (else marked overdue and chased)
    submission_on_time: float = 0.7  # Trust submits its Annual Report, Work plan, Operational Policy on time
    submission_late: float = 0.2  # after the due date (chased)
    # the rest (0.1) submit on time but the network requests more information
    late_working_days: tuple[int, int] = (1, 15)  # how late the late ones are


@dataclass(frozen=True)
class Settings:
    start: date
    end: date
    networks: int = 10
    services: int = 200
    seed: int = 7
    out: Path = Path("var/simulation")
    rates: Rates = field(default_factory=Rates)

    def check(self) -> None:
        if self.end < self.start:
            raise InvalidInput(f"--to {self.end.isoformat()} is before --from {self.start.isoformat()}")
        if self.networks < 2:
            raise InvalidInput(f"--networks {self.networks}: at least 2 (one annual, one biennial)")
        if self.services < 1:
            raise InvalidInput(f"--services {self.services}: at least 1 per network")


@dataclass
class World:
    """The synthetic reference data the people need to act."""

    networks: list[Network]
    network_of_service: dict[int, int]
    ceo_of_service: dict[int, int]  # service id -> the Chief Executive contact of its Trust
    reviewers: dict[int, list[int]]  # network id -> reviewer ids
    evidence: Path  # the file a Trust "submits"


CAST_TITLES = {NETWORK_MANAGER: "Network Manager", REGIONAL_LEAD: "Regional Lead", NETWORK_OFFICE: "Network office"}
ADMINISTRATOR_LOGIN = "peerwatch-simulation"


def fresh_database(out: Path) -> Engine:
    """A new, empty SQLite database at ``out/simulation.db`` (any earlier one is removed),
    marked as a training database: its dates are simulated and its letters never sent."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "simulation.db"
    url = f"sqlite:///{path}"
    dispose_engine(url)
    for p in (path, path.with_name("simulation.db-wal"), path.with_name("simulation.db-shm")):
        p.unlink(missing_ok=True)
    db = init_db(url)
    with Session(db) as s:
        accounts.mark_training(s)
        s.commit()
    return db


def cast(session: Session, networks: list[Network], clock: Clock) -> dict[int, dict[str, Principal]]:
    """The people of the story as accounts, made as ``peerwatch init`` and an administrator make
    them (each an audited event): an administrator, then for each network its Network Manager,
    Regional Lead and network office, each granted their role for that network only. Returns,
    per network id, the principal each role acts as (``--as`` in a training database)."""
    admin, _ = accounts.bootstrap(
        session,
        clock,
        os_login=ADMINISTRATOR_LOGIN,
        name="Simulation administrator",
        email="administrator@simulation.nhs.invalid",
    )
    assert admin is not None
    by = accounts.principal_for(session, admin, "training")
    people: dict[int, dict[str, Principal]] = {}
    for net in networks:
        assert net.id is not None
        slug = net.code.lower()
        people[net.id] = {}
        for role, title in CAST_TITLES.items():
            email = f"{role}@{slug}.network.nhs.invalid"
            accounts.add_user(session, by, clock, name=f"{title}, {net.name}", email=email)
            accounts.grant(session, by, clock, email, role, NETWORK_SCOPE, net.id)
            people[net.id][role] = accounts.training_principal(session, email)
    return people


def build_world(session: Session, settings: Settings) -> World:
    """Networks (half annual, half biennial), Trusts, services, contacts and reviewers, in bulk."""
    n_biennial = settings.networks // 2
    cycles = ["annual"] * (settings.networks - n_biennial) + ["biennial"] * n_biennial
    counter: dict[str, int] = defaultdict(int)
    networks = []
    for cycle in cycles:
        counter[cycle] += 1
        networks.append(
            Network(
                code=f"SYN-{cycle[0].upper()}{counter[cycle]}", name=f"Synthetic {cycle} {counter[cycle]}", cycle=cycle
            )
        )
    session.add_all(networks)
    session.flush()
    contacts: list[dict[str, Any]] = [_contact(r, "national", "england.nhs.invalid") for r in NATIONAL_ROLES]
    world = World(networks, {}, {}, {}, settings.out / "evidence.txt")
    for net in networks:
        assert net.id is not None
        slug = net.code.lower()
        contacts += [_contact(r, net.name, f"{slug}.network.nhs.invalid", network_id=net.id) for r in NETWORK_ROLES]
        _services(session, net, settings.services, world, contacts)
        reviewers = [
            Reviewer(
                name=f"Reviewer {d} {k} ({net.code})",
                email=f"{d}.{k}@reviewers.{slug}.nhs.invalid",
                discipline=d,
                network_id=net.id,
                pathways=[],
                trained=True,
            )
            for k in range(1, max(2, settings.services // 40) + 1)
            for d in DISCIPLINES
        ]
        session.add_all(reviewers)
        session.flush()
        world.reviewers[net.id] = [r.id for r in reviewers if r.id is not None]
    session.execute(insert(Contact.__table__), contacts)  # type: ignore[attr-defined]
    session.flush()
    trust_ceo = dict(
        session.exec(select(Contact.organisation_id, Contact.id).where(Contact.role == "chief-executive")).all()
    )
    orgs = dict(session.exec(select(Service.id, Service.organisation_id)).all())
    world.ceo_of_service = {svc: trust_ceo[org] for svc, org in orgs.items() if svc is not None}
    world.evidence.write_text("Synthetic evidence document for the peerwatch simulation.\n")
    return world


def _contact(role: str, where: str, domain: str, **scope: int | None) -> dict[str, Any]:
    key = "-".join(str(v) for v in scope.values() if v is not None)
    return {
        "role": role,
        "name": f"{CONTACT_ROLES[role]}, {where}",
        "email": f"{role}{'.' + key if key else ''}@{domain}",
        "service_id": scope.get("service_id"),
        "organisation_id": scope.get("organisation_id"),
        "network_id": scope.get("network_id"),
    }


def _services(session: Session, net: Network, n: int, world: World, contacts: list[dict[str, Any]]) -> None:
    """``n`` services of one network in Trusts of ten services each, with their contacts."""
    assert net.id is not None
    trusts = [
        Organisation(name=f"{net.name} Trust {t + 1:02d} NHS Trust", nation="ENG")
        for t in range(math.ceil(n / SERVICES_PER_TRUST))
    ]
    session.add_all(trusts)
    session.flush()
    services = [
        Service(
            name=f"{net.name} Trust {i // SERVICES_PER_TRUST + 1:02d} {SERVICE_KINDS[i % len(SERVICE_KINDS)]} {i + 1}",
            kind=SERVICE_KINDS[i % len(SERVICE_KINDS)],
            organisation_id=trusts[i // SERVICES_PER_TRUST].id,  # type: ignore[arg-type]
            network_id=net.id,
        )
        for i in range(n)
    ]
    session.add_all(services)
    session.flush()
    for org in trusts:
        contacts += [_contact(r, org.name, f"trust{org.id}.nhs.invalid", organisation_id=org.id) for r in TRUST_ROLES]
    for svc in services:
        assert svc.id is not None
        world.network_of_service[svc.id] = net.id
        contacts += [
            _contact(
                r,
                svc.name,
                f"trust{svc.organisation_id}.nhs.invalid",
                service_id=svc.id,
                organisation_id=svc.organisation_id,
            )
            for r in SERVICE_ROLES
        ]
