"""The workload simulation: synthetic networks walked day by day through the real code.

``simulate`` builds a fresh SQLite database of its own (never the user's) with N synthetic
networks, half on the annual (West Midlands) and half on the biennial (Cheshire & Mersey)
programme, each with S services in synthetic Trusts and a contact for every role a letter
can need. Then, for each day from ``start`` to ``end`` it runs what the deployments run:

- 06:30 every day, the ``cycle`` flow's work: ``states.services.cycle.plan_year`` for each network,
  then ``states.engine.sweep.run_sweep``;
- 07:00 Monday-Friday, the ``chase`` flow's work: ``run_sweep`` again;
- noon on working days, the people: network staff record what the synthetic Trusts, services
  and reviewers do, through ``states.engine`` with their proper roles (``Behaviour`` draws
  when, with a seeded ``random.Random``);
- 18:00, the ``dispatch`` flow's work: ``notifications.dispatch.dispatch`` to a
  ``MemoryTransport`` emptied after each run (the simulation only counts what was sent).

Visits follow the programme files: a phase whose title begins with ``Rates.visit_phase_pattern``
("Peer review visits ..." in the annual file, "Formal peer review meetings" in year 1 of
the biennial one) is when each network visits its services. The workload is then counted
from the audit log and the outbox (``states.views.workload``), never from counters kept here.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.cycle import ProgrammePhase
from models.db import begin_write, dispose_engine, init_db
from models.tables import AccuracyItem, Contact, Network, Organisation, Proposal, Reviewer, Risk, Service, Visit
from notifications.dispatch import dispatch
from notifications.transports import MemoryTransport
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock, local_date
from states.engine.sweep import run_sweep
from states.errors import InvalidInput, PeerwatchError
from states.machines.spec import get_spec
from states.machines.visit import DISCIPLINES
from states.policy import Policy
from states.programmes import programme_for, programme_year_of
from states.roles import CONTACT_ROLES, NETWORK_MANAGER, NETWORK_OFFICE, REGIONAL_LEAD
from states.services.cycle import plan_year

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
ACTOR_TITLES = {NETWORK_MANAGER: "Network Manager", REGIONAL_LEAD: "Regional Lead", NETWORK_OFFICE: "Network office"}

# States in which a person (not the sweep) takes the next step, by kind, in the order kinds are walked.
HUMAN_STATES: dict[str, tuple[str, ...]] = {
    "phase": ("open", "overdue"),
    "submission": ("requested", "received", "more_info_requested"),
    "visit": ("proposed", "scheduled", "service_notified", "prepared", "held", "feedback_given"),
    "risk": (
        "identified",
        "awaiting_response",
        "chased",
        "further_response_requested",
        "escalated",
        "monitoring",
        "work_programme",
    ),
    "report": ("drafting", "accuracy_check", "inaccuracies_received", "approved", "distributed", "published"),
    "appeal": ("submitted", "initial_consideration", "subgroup_convened", "decided"),
}
MAX_ROUNDS = 16  # steps of one item on one day (e.g. schedule, notify, four panel invitations)
BATCH = 500
DISPATCH_LIMIT = 1000  # rows per dispatch run, as the flow's default
APPEAL = "__appeal__"  # a step that submits an appeal (states.services.appeal.submit), not a trigger


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
class Step:
    """What a person does next to one item, on or after ``at`` (None: wait for the sweep)."""

    kind: str
    item_id: int
    version: int
    network_id: int
    at: date | None = None
    trigger: str = ""
    role: str = NETWORK_MANAGER
    note: str | None = None
    params: dict[str, Any] | None = None


@dataclass
class World:
    """The synthetic reference data the people need to act."""

    networks: list[Network]
    network_of_service: dict[int, int]
    ceo_of_service: dict[int, int]  # service id -> the Chief Executive contact of its Trust
    reviewers: dict[int, list[int]]  # network id -> reviewer ids
    evidence: Path  # the file a Trust "submits"


def simulate(settings: Settings, on_day: Callable[[date], None] | None = None) -> dict[str, Any]:
    """Run the simulation into ``settings.out`` and return the workload (states.views.workload)."""
    from states.views import workload

    settings.check()
    began = time.perf_counter()
    db = fresh_database(settings.out)
    with Session(db, expire_on_commit=False) as s:
        world = build_world(s, settings)
        s.commit()
    run = Run(db, settings, world)
    day = settings.start
    while day <= settings.end:
        run.day(day)
        if on_day:
            on_day(day)
        day += timedelta(days=1)
    result = workload.count(db, settings.start, settings.end)
    result.update(
        {
            "seed": settings.seed,
            "services_per_network": settings.services,
            "rates": asdict(settings.rates),
            "emails_sent": run.emails,
            "skipped": run.skipped,
            "database": str(settings.out / "simulation.db"),
            "seconds": round(time.perf_counter() - began, 1),
        }
    )
    workload.write_outputs(result, settings.out)
    return result


def fresh_database(out: Path) -> Engine:
    """A new, empty SQLite database at ``out/simulation.db`` (any earlier one is removed)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "simulation.db"
    url = f"sqlite:///{path}"
    dispose_engine(url)
    for p in (path, path.with_name("simulation.db-wal"), path.with_name("simulation.db-shm")):
        p.unlink(missing_ok=True)
    return init_db(url)


# ---------------------------------------------------------------- the synthetic world


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


# ---------------------------------------------------------------- the run, day by day


class Run:
    """One simulation: the flows' work each day, and the people between them."""

    def __init__(self, db: Engine, settings: Settings, world: World) -> None:
        self.db, self.settings, self.world, self.r = db, settings, world, settings.rates
        self.rng = random.Random(settings.seed)
        self.policy = Policy.from_env()
        self.cal = calendar_for("ENG")
        self.clock = FixedClock(settings.start)
        self.transport = MemoryTransport()
        self.plans: dict[tuple[str, int], Step] = {}
        self.memo: dict[tuple[Any, ...], Any] = {}  # each item's drawn fate, drawn once
        self.behaviour = Behaviour(self)
        self.emails = 0
        self.skipped: list[dict[str, Any]] = []
        self.actors = {
            n.id: {role: f"{title}, {n.name}" for role, title in ACTOR_TITLES.items()} for n in world.networks
        }
        self.visit_keys = {n.id: visit_phase_keys(n, self.r.visit_phase_pattern) for n in world.networks}

    def day(self, day: date) -> None:
        self.clock.set(day, 6)  # the cycle flow, early every morning
        with Session(self.db, expire_on_commit=False) as s:
            for net in s.exec(select(Network).order_by(Network.id)):  # type: ignore[arg-type]
                plan_year(s, net, programme_year_of(day), self.clock)
            s.commit()
        run_sweep(self.db, self.clock, self.policy)
        if day.weekday() < 5:  # the chase flow, 07:00 Monday-Friday
            self.clock.set(day, 7)
            run_sweep(self.db, self.clock, self.policy)
        if self.cal.is_working_day(day):
            self.clock.set(day, 12)
            self.people(day)
        self.clock.set(day, 18)  # the dispatch flow (every 15 minutes in production: here until the outbox is drained)
        with Session(self.db, expire_on_commit=False) as s:
            for _ in range(52):
                if (
                    dispatch(s, self.transport, self.clock, self.policy, limit=DISPATCH_LIMIT).sent_rows
                    < DISPATCH_LIMIT
                ):
                    break
        self.emails += len(self.transport.sent)
        self.transport.sent.clear()

    def people(self, day: date) -> None:
        """Everything people do today: new visits, then each item's next step, round after round."""
        self.propose_visits(day)
        only: dict[str, list[int]] | None = None
        for _ in range(MAX_ROUNDS):
            due = self.collect(day, only)
            if not due:
                return
            only = self.execute(due)

    # -- planning

    def collect(self, day: date, only: dict[str, list[int]] | None) -> list[Step]:
        """Each open item's next step (planned once per item version); those due today."""
        due = []
        with Session(self.db, expire_on_commit=False) as s:
            for kind, states in HUMAN_STATES.items():
                if only is not None and not only.get(kind):
                    continue
                model = get_spec(kind).model
                query = select(model.id, model.version).where(col(model.state).in_(states))
                if only is None:
                    current = list(s.exec(query).all())
                else:
                    current = [
                        row
                        for chunk in _chunks(only[kind])
                        for row in s.exec(query.where(col(model.id).in_(chunk))).all()
                    ]
                fresh = sorted(i for i, v in current if (p := self.plans.get((kind, i))) is None or p.version != v)
                if fresh:
                    self.behaviour.plan(s, kind, fresh, day)
                due += [p for i, _ in sorted(current) if (p := self.plans[(kind, i)]).at is not None and p.at <= day]
        return due

    # -- acting

    def execute(self, steps: list[Step]) -> dict[str, list[int]]:
        """Fire the steps through the engine, batched per network and role; returns what moved."""
        touched: dict[str, list[int]] = defaultdict(list)
        groups: dict[tuple[int, str], list[Step]] = defaultdict(list)
        alone = []
        for st in steps:
            # an appeal's decision withdraws risks and re-issues its report: never batched with them
            (alone if st.kind == "appeal" or st.trigger == APPEAL else groups[(st.network_id, st.role)]).append(st)
        for (net_id, role), group in groups.items():
            for chunk in _chunks(group, BATCH):
                if self._fire_batch(chunk, self.actors[net_id][role], role):
                    for st in chunk:
                        self._done(st, touched)
                else:
                    for st in chunk:
                        if self._fire_one(st):
                            self._done(st, touched)
        for st in alone:
            if self._fire_one(st):
                self._done(st, touched)
        return dict(touched)

    def _fire_batch(self, steps: list[Step], actor: str, role: str) -> bool:
        requests = [engine.Request(st.kind, st.item_id, st.trigger, st.note, st.version, st.params) for st in steps]
        try:
            with Session(self.db, expire_on_commit=False) as s:
                begin_write(s)
                engine.fire_many(s, requests, actor=actor, role=role, clock=self.clock, policy=self.policy)
                s.commit()
        except PeerwatchError:
            return False
        return True

    def _fire_one(self, st: Step) -> bool:
        """One step on its own; a refusal is recorded (a flaw in the simulated behaviour) and the item waits."""
        actor = self.actors[st.network_id][st.role]
        try:
            if st.trigger == APPEAL:
                return self._appeal(st, actor)
            if st.kind == "appeal" and st.trigger == "decide" and st.role == NETWORK_MANAGER:
                self.behaviour.settle_decision(st)
            with Session(self.db, expire_on_commit=False) as s:
                begin_write(s)
                engine.fire(
                    s,
                    st.kind,
                    st.item_id,
                    st.trigger,
                    actor=actor,
                    role=st.role,
                    clock=self.clock,
                    note=st.note,
                    expected_version=st.version,
                    params=st.params,
                    policy=self.policy,
                )
                s.commit()
        except PeerwatchError as exc:
            self.skipped.append(
                {
                    "kind": st.kind,
                    "id": st.item_id,
                    "trigger": st.trigger,
                    "on": local_date(self.clock.now()).isoformat(),
                    "reason": str(exc),
                }
            )
            st.at = None
            return False
        return True

    def _appeal(self, st: Step, actor: str) -> bool:
        from states.services.appeal import submit

        params = st.params or {}
        submit(
            self.db,
            report_id=st.item_id,
            appellant_contact_id=params["appellant"],
            statement=str(st.note),
            grounds=params["grounds"],
            actor=actor,
            role=st.role,
            clock=self.clock,
        )
        st.at = None  # the report itself has not changed: nothing more to do for it
        return True

    def _done(self, st: Step, touched: dict[str, list[int]]) -> None:
        if st.trigger == "record_progress":
            self.memo[("reviewed", st.item_id)] = self.memo.get(("reviewed", st.item_id), 0) + 1
        if st.trigger != APPEAL:
            touched[st.kind].append(st.item_id)

    # -- visits, as the programme says

    def propose_visits(self, day: date) -> None:
        """When a visit phase is open, propose a visit to each service chosen (once per phase)."""
        from states.views.weighting import candidates

        with Session(self.db, expire_on_commit=False) as s:
            phases = s.exec(
                select(ProgrammePhase)
                .where(col(ProgrammePhase.state).in_(("open", "overdue")))
                .order_by(ProgrammePhase.id)
            ).all()  # type: ignore[arg-type]
            todo = [p for p in phases if p.key in self.visit_keys[p.network_id] and ("visits", p.id) not in self.memo]
            if not todo:
                return
            begin_write(s)
            for phase in todo:
                self.memo[("visits", phase.id)] = True
                net = s.get(Network, phase.network_id)
                assert net is not None
                ranked = [c for c in candidates(s, net.code, day, self.policy) if not c["visit_in_progress"]]
                chosen = ranked[: round(len(ranked) * self.r.visit_share)]
                window = self._visit_days(day, phase.due_on)
                rows = [Visit(service_id=c["service_id"], state="new") for c in chosen]
                outs = engine.create_many(
                    s,
                    "visit",
                    rows,
                    "propose",
                    actor=self.actors[net.id][NETWORK_MANAGER],
                    role=NETWORK_MANAGER,
                    clock=self.clock,
                    policy=self.policy,
                    params=[{"reason": f"{phase.title}: weighting score {c['score']}"} for c in chosen],
                )
                for out in outs:
                    self.memo[("visit_date", out.row.id)] = self.rng.choice(window)
                    self.memo[("visit_mode", out.row.id)] = (
                        "virtual" if self.rng.random() < self.r.virtual_visit else "in_person"
                    )
            s.commit()

    def _visit_days(self, day: date, phase_due: date) -> list[date]:
        """Working days visits can be held: from the lead time after today to a week before the phase is due."""
        first = self.cal.add_working_days(day, self.r.visit_lead_working_days)
        last = max(self.cal.subtract_working_days(phase_due, 5), self.cal.add_working_days(first, 10))
        return self.working_days(first, last)

    def working_days(self, first: date, last: date) -> list[date]:
        days, d = [], first
        while d <= last:
            if self.cal.is_working_day(d):
                days.append(d)
            d += timedelta(days=1)
        return days


def visit_phase_keys(net: Network, pattern: str) -> set[str]:
    """Keys of the programme's phases whose title says they are peer review visits."""
    found = re.compile(pattern, re.IGNORECASE)
    return {p.key for p in programme_for(net.cycle, net.programme).phases if found.match(p.title)}


def _chunks(items: list[Any], size: int = 900) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


# ---------------------------------------------------------------- what people do


class Behaviour:
    """Each item's next step, drawn from the rates when the item reaches a state."""

    def __init__(self, run: Run) -> None:
        self.run, self.r, self.rng, self.cal, self.memo = run, run.r, run.rng, run.cal, run.memo

    def plan(self, s: Session, kind: str, ids: list[int], day: date) -> None:
        """Plan the next step of items that reached a new version (loaded in one query per kind)."""
        model = get_spec(kind).model
        rows = sorted(
            (row for chunk in _chunks(ids) for row in s.exec(select(model).where(col(model.id).in_(chunk)))),
            key=lambda r: r.id,
        )
        deadlines = _open_deadlines(s, kind, ids)
        extra = getattr(self, f"_{kind}_extra", lambda _s, _rows: None)(s, rows)
        planner = getattr(self, f"_{kind}")
        for row in rows:
            net = row.network_id if hasattr(row, "network_id") else self.run.world.network_of_service[row.service_id]
            step = Step(kind, row.id, row.version, net)
            planner(row, step, day, deadlines, extra)
            self.run.plans[(kind, row.id)] = step

    # -- helpers

    def wd(self, day: date, n: int) -> date:
        return self.cal.add_working_days(day, n)

    def between(self, first: date, last: date) -> date:
        """A working day drawn from [first, last]; ``first`` if there is none."""
        days = self.run.working_days(first, last)
        return self.rng.choice(days) if days else first

    def late(self, due: date) -> date:
        return self.wd(due, self.rng.randint(*self.r.late_working_days))

    def once(self, key: tuple[Any, ...], draw: Callable[[], Any]) -> Any:
        if key not in self.memo:
            self.memo[key] = draw()
        return self.memo[key]

    def poisson(self, mean: float) -> int:
        limit, k, p = math.exp(-mean), 0, self.rng.random()
        while p > limit:
            k += 1
            p *= self.rng.random()
        return k

    @staticmethod
    def act(
        step: Step, at: date, trigger: str, role: str = NETWORK_MANAGER, note: str | None = None, **params: Any
    ) -> None:
        step.at, step.trigger, step.role, step.note, step.params = at, trigger, role, note, params or None

    # -- programme phases and document submissions

    def _phase(self, row: Any, step: Step, day: date, deadlines: dict[tuple[int, str], date], extra: None) -> None:
        if row.state == "overdue":
            self.act(step, self.late(day), "complete", note="completed after its due date")
        elif self.rng.random() < self.r.phase_on_time:
            self.act(step, self.between(max(day, row.due_on - timedelta(days=14)), row.due_on), "complete")
        # else: left open; the sweep marks it overdue and chases

    def _submission(self, row: Any, step: Step, day: date, deadlines: dict[tuple[int, str], date], extra: None) -> None:
        fate = self.once(
            ("submission", row.id),
            lambda: _pick(
                self.rng, {"on_time": self.r.submission_on_time, "late": self.r.submission_late}, "inadequate"
            ),
        )
        file = {"file": str(self.run.world.evidence)}
        if row.state == "requested":
            at = (
                self.late(row.due_on)
                if fate == "late"
                else self.between(max(day, row.due_on - timedelta(days=28)), row.due_on)
            )
            self.act(step, at, "receive", NETWORK_OFFICE, **file)
        elif row.state == "more_info_requested":
            self.act(step, self.wd(day, self.rng.randint(2, 12)), "receive", NETWORK_OFFICE, **file)
        elif fate == "inadequate" and row.information_requests == 0:
            self.act(
                step,
                self.wd(day, self.rng.randint(3, 8)),
                "request_more_information",
                note="assurance insufficient: please send the action plan's milestones",
            )
        else:
            self.act(step, self.wd(day, self.rng.randint(2, 8)), "accept")

    # -- visits

    def _visit_extra(self, s: Session, rows: list[Any]) -> dict[int, list[tuple[int, date | None]]]:
        from models.tables import PanelMember

        panel: dict[int, list[tuple[int, date | None]]] = defaultdict(list)
        ids = [r.id for r in rows if r.state == "service_notified"]
        for chunk in _chunks(ids):
            for m in s.exec(select(PanelMember).where(col(PanelMember.visit_id).in_(chunk)).order_by(PanelMember.id)):  # type: ignore[arg-type]
                panel[m.visit_id].append((m.reviewer_id, m.declared_on))
        return panel

    def _visit(
        self,
        row: Any,
        step: Step,
        day: date,
        deadlines: dict[tuple[int, str], date],
        panel: dict[int, list[tuple[int, date | None]]],
    ) -> None:
        office = NETWORK_OFFICE
        if row.state == "proposed":
            when = max(self.memo[("visit_date", row.id)], self.wd(day, 15))
            self.act(step, day, "schedule", date=when.isoformat(), mode=self.memo[("visit_mode", row.id)])
        elif row.state == "scheduled":
            self.act(step, day, "notify_service", office)
        elif row.state == "service_notified":
            self._prepare(row, step, day, panel[row.id])
        elif row.state == "prepared":
            self.act(step, row.visit_date, "hold", office)
        elif row.state == "held":
            self.act(step, day, "give_feedback", note="high level feedback to the service", risks=self._findings(row))
        else:
            self.act(step, day, "close", note="report drafting under way")

    def _prepare(self, row: Any, step: Step, day: date, members: list[tuple[int, date | None]]) -> None:
        """Build the panel, collect every declaration, settle the preparation, confirm."""
        office = NETWORK_OFFICE
        if len(members) < self.r.panel_size:
            taken = {rid for rid, _ in members}
            pool = [r for r in self.run.world.reviewers[step.network_id] if r not in taken]
            self.act(step, day, "add_panel_member", office, reviewer_id=self.rng.choice(pool))
            return
        undeclared = [rid for rid, declared in members if declared is None]
        if undeclared:
            due = max(
                self.cal.subtract_working_days(row.visit_date, self.run.policy.declarations_working_days_before_visit),
                day,
            )
            latest = max(self.cal.subtract_working_days(row.visit_date, 2), day)
            when = {
                rid: self.once(
                    ("declares", row.id, rid),
                    lambda: (
                        self.between(day, due)
                        if self.rng.random() < self.r.declaration_on_time
                        else min(self.late(due), latest)
                    ),
                )
                for rid in undeclared
            }
            rid = min(undeclared, key=lambda r: (when[r], r))
            self.act(step, when[rid], "record_declaration", office, reviewer_id=rid)
        elif not (row.prep_session in ("held", "declined") and row.panel_confirmed and row.evidence_received):
            self.act(
                step,
                day,
                "record_preparation",
                office,
                panel_confirmed="yes",
                evidence_received="yes",
                prep_session="held" if self.rng.random() < self.r.prep_session_held else "declined",
            )
        else:
            self.act(step, day, "confirm_prepared", office)

    def _findings(self, row: Any) -> list[dict[str, Any]]:
        """The IRs, SCs and GCs the panel finds (Poisson counts)."""
        found = []
        for level, mean in (("IR", self.r.ir_per_visit), ("SC", self.r.sc_per_visit), ("GC", self.r.gc_per_visit)):
            for _ in range(self.poisson(mean)):
                item: dict[str, Any] = {
                    "level": level,
                    "title": f"{level} found at visit {row.id}",
                    "standard_ref": f"STD-{self.rng.randint(1, 40)}",
                }
                if level != "GC":
                    item.update(
                        impact=self.rng.randint(2, 6),
                        likelihood=self.rng.randint(2, 6),
                        doctors_in_training=self.rng.random() < self.r.doctors_in_training,
                    )
                found.append(item)
        return found

    # -- immediate risks, serious and general concerns

    def _risk(self, row: Any, step: Step, day: date, deadlines: dict[tuple[int, str], date], extra: None) -> None:
        due = deadlines.get
        fate = self.once(
            ("trust", row.id),
            lambda: _pick(
                self.rng,
                {"on_time": self.r.trust_on_time, "late": self.r.trust_late, "inadequate": self.r.trust_inadequate},
                "silent",
            ),
        )
        if row.state == "identified":
            by = self.wd(row.visit_date or row.identified_on, 5)
            at = self.between(day, by) if self.rng.random() < self.r.notification_on_time else self.late(by)
            self.act(step, at, "send_formal_notification", note="formal notification letter sent")
        elif row.state == "awaiting_response" and fate in ("on_time", "inadequate"):
            at = self.between(self.wd(day, 1), due((row.id, "response"), day))
            if fate == "on_time":
                self.act(step, at, "response_adequate", note="formal response with an action plan")
            else:
                self.act(step, at, "response_inadequate", note="response has no milestones")
        elif row.state == "chased" and fate == "late":
            self.act(
                step,
                self.between(day, due((row.id, "chase_response"), day)),
                "response_adequate",
                note="answered the chase",
            )
        elif row.state == "further_response_requested":
            at = self.between(self.wd(day, 1), due((row.id, "further_response"), day))
            adequate = self.rng.random() < self.r.second_response_adequate
            self.act(
                step,
                at,
                "response_adequate" if adequate else "response_inadequate",
                note="further response" + ("" if adequate else " still inadequate"),
            )
        elif row.state == "escalated":
            self.act(
                step,
                self.wd(day, self.rng.randint(*self.r.escalated_answer_working_days)),
                "response_adequate",
                note="adequate response after escalation",
            )
        elif row.state in ("monitoring", "work_programme"):
            self._review(
                row,
                step,
                day,
                due((row.id, "monitoring_review"), self.cal.add_weeks(day, self.run.policy.monitoring_weeks)),
            )
        # else: awaiting a response that is late or never comes: the sweep chases and escalates

    def _review(self, row: Any, step: Step, day: date, due: date) -> None:
        """Quarterly review of the action plan or work programme; closed after the drawn number."""
        reviews = self.once(("reviews", row.id), lambda: self.rng.randint(*self.r.reviews_before_close))
        at = (
            self.between(max(day, due - timedelta(days=14)), due)
            if self.rng.random() < self.r.monitoring_on_time
            else self.late(due)
        )
        if self.memo.get(("reviewed", row.id), 0) + 1 >= reviews:
            self.act(step, at, "close", note="actions complete")
        else:
            self.act(step, at, "record_progress", note="quarterly review: action plan on track")

    # -- reports

    def _report_extra(self, s: Session, rows: list[Any]) -> dict[str, Any]:
        ids = [r.id for r in rows if r.state == "inaccuracies_received"]
        items: dict[int, list[AccuracyItem]] = defaultdict(list)
        for chunk in _chunks(ids):
            for i in s.exec(
                select(AccuracyItem).where(col(AccuracyItem.report_id).in_(chunk)).order_by(AccuracyItem.id)
            ):  # type: ignore[arg-type]
                items[i.report_id].append(i)
        visits = [r.visit_id for r in rows if r.state == "published" and r.visit_id]
        risks: dict[int, list[int]] = defaultdict(list)
        for chunk in _chunks(visits):
            for rid, vid in s.exec(
                select(Risk.id, Risk.visit_id)
                .where(col(Risk.visit_id).in_(chunk), col(Risk.level).in_(("IR", "SC")))
                .order_by(Risk.id)
            ):  # type: ignore[arg-type]
                risks[vid].append(rid)  # type: ignore[index]
        return {"items": items, "risks": risks}

    def _report(
        self, row: Any, step: Step, day: date, deadlines: dict[tuple[int, str], date], extra: dict[str, Any]
    ) -> None:
        office = NETWORK_OFFICE
        if row.state == "drafting":
            due = self.cal.add_weeks(row.basis_date, self.run.policy.report_weeks)
            send = self.once(
                ("send", row.id),
                lambda: (
                    self.between(max(day, due - timedelta(days=21)), due)
                    if self.rng.random() < self.r.report_on_time
                    else self.late(due)
                ),
            )
            if len(row.compliance) < self.r.standards_per_report:
                self.act(
                    step,
                    send,
                    "add_standard",
                    office,
                    ref=f"STD-{len(row.compliance) + 1}",
                    descriptor="Synthetic standard",
                    status=_pick(
                        self.rng,
                        {"Unmet": self.r.standard_unmet, "Partially Met": self.r.standard_partially_met},
                        "Met",
                    ),
                )
            else:
                self.act(step, send, "send_for_accuracy_check", office)
        elif row.state == "accuracy_check":
            due = deadlines.get((row.id, "accuracy_reply"), day)
            at = (
                self.between(self.wd(day, 1), due)
                if self.rng.random() < self.r.accuracy_reply_on_time
                else self.late(due)
            )
            if self.rng.random() < self.r.inaccuracy_stated:
                self.act(
                    step,
                    at,
                    "record_inaccuracy",
                    office,
                    text="The report gives the wrong number of consultants on the rota",
                )
            else:
                self.act(step, at, "approve", REGIONAL_LEAD)
        elif row.state == "inaccuracies_received":
            self._decide_inaccuracies(row, step, day, extra["items"][row.id])
        elif row.state == "approved":
            self.act(step, self.wd(day, self.rng.randint(0, 2)), "distribute", office)
        elif row.state == "distributed":
            self.act(step, self.wd(day, self.rng.randint(0, 3)), "publish", REGIONAL_LEAD)
        elif ("appeal", row.id) not in self.memo:
            self._maybe_appeal(row, step, extra["risks"].get(row.visit_id, []))

    def _decide_inaccuracies(self, row: Any, step: Step, day: date, items: list[AccuracyItem]) -> None:
        """The Network Manager and the Regional Lead each decide every item, then approve."""
        at = self.once(("decide_on", row.id), lambda: self.wd(day, self.rng.randint(1, 5)))
        for item in items:
            for role, decided in ((NETWORK_MANAGER, item.manager_decision), (REGIONAL_LEAD, item.lead_decision)):
                if decided is None:
                    accepted = self.rng.random() < self.r.inaccuracy_accepted
                    self.act(
                        step,
                        max(at, day),
                        "decide_inaccuracy",
                        role,
                        item_id=item.id,
                        decision="accepted" if accepted else "rejected",
                    )
                    return
        self.act(step, max(at, day), "approve", REGIONAL_LEAD)

    def _maybe_appeal(self, row: Any, step: Step, risks: list[int]) -> None:
        """Within 4 weeks of publication the Chief Executive may appeal an IR/SC or the compliance judgement."""
        self.memo[("appeal", row.id)] = True
        unsatisfactory = any(c["status"] in ("Unmet", "Partially Met") for c in row.compliance)
        if not (risks or unsatisfactory) or self.rng.random() >= self.r.appeal:
            return
        grounds = [{"risk_id": risks[0]}] if risks else [{"compliance": True}]
        at = min(self.wd(row.published_on, self.rng.randint(1, 19)), row.published_on + timedelta(days=27))
        self.act(
            step,
            at,
            APPEAL,
            NETWORK_OFFICE,
            note="The conclusions do not reflect the evidence given on the day.",
            appellant=self.run.world.ceo_of_service[row.service_id],
            grounds=grounds,
        )

    # -- appeals

    def _appeal_extra(self, s: Session, rows: list[Any]) -> dict[str, Any]:
        ids = [r.id for r in rows]
        proposals = {
            (p.item_id, p.item_version)
            for chunk in _chunks(ids)
            for p in s.exec(
                select(Proposal).where(
                    Proposal.kind == "appeal", Proposal.trigger == "decide", col(Proposal.item_id).in_(chunk)
                )
            )
        }
        risk_ids = [g["risk_id"] for r in rows for g in r.grounds if "risk_id" in g]
        open_risks = {
            i
            for chunk in _chunks(risk_ids)
            for i in s.exec(
                select(Risk.id).where(col(Risk.id).in_(chunk), col(Risk.state).not_in(("closed", "withdrawn")))
            )
        }
        return {"proposals": proposals, "open_risks": open_risks}

    def _appeal(
        self, row: Any, step: Step, day: date, deadlines: dict[tuple[int, str], date], extra: dict[str, Any]
    ) -> None:
        subgroup = self.once(("subgroup", row.id), lambda: self.rng.random() < self.r.appeal_subgroup)
        if row.state == "submitted":
            self.act(step, self.wd(day, self.rng.randint(1, 5)), "begin_consideration")
        elif row.state == "decided":
            self.act(step, self.wd(day, 1), "communicate")
        elif row.state == "initial_consideration" and subgroup and len(row.subgroup) < 3:
            k = len(row.subgroup) + 1
            self.act(
                step,
                day,
                "add_subgroup_member",
                name=f"Independent member {k} of appeal {row.id}",
                email=f"member{k}.appeal{row.id}@independent.nhs.invalid",
            )
        elif row.state == "initial_consideration" and subgroup:
            self.act(step, day, "convene_subgroup")
        else:
            self._decide_appeal(row, step, day, extra)

    def _decide_appeal(self, row: Any, step: Step, day: date, extra: dict[str, Any]) -> None:
        """Four eyes: the Network Manager proposes the decision, the Regional Lead confirms it."""
        note = "decision of the appeal consideration"
        if (row.id, row.version) in extra["proposals"]:
            self.act(step, day, "decide", REGIONAL_LEAD, note, **self.memo[("decision", row.id)])
            return
        result = self.cal.add_weeks(row.submitted_on, 8)
        at = self.once(
            ("decide_on", "appeal", row.id),
            lambda: (
                self.between(self.wd(day, 5), result)
                if self.rng.random() < self.r.appeal_decided_on_time
                else self.late(result)
            ),
        )
        named = [g["risk_id"] for g in row.grounds if "risk_id" in g and g["risk_id"] in extra["open_risks"]]

        def decision() -> dict[str, Any]:
            if self.rng.random() >= self.r.appeal_upheld:
                return {"outcome": "not_upheld"}
            return {"outcome": "upheld", "withdraw": named} if named else {"outcome": "partly_upheld"}

        self.act(step, max(at, day), "decide", NETWORK_MANAGER, note, **self.once(("decision", row.id), decision))

    def settle_decision(self, step: Step) -> None:
        """An upheld appeal withdraws only the named risks still open on the day it is decided
        (one may have been closed since the decision was drawn): none left, partly upheld."""
        named = (step.params or {}).get("withdraw")
        if not named:
            return
        with Session(self.run.db) as s:
            still = [
                i for i in named if (risk := s.get(Risk, i)) is not None and risk.state not in ("closed", "withdrawn")
            ]
        step.params = {"outcome": "upheld", "withdraw": still} if still else {"outcome": "partly_upheld"}
        self.memo[("decision", step.item_id)] = step.params


def _pick(rng: random.Random, rates: dict[str, float], rest: str) -> str:
    """One outcome: each key with its probability, ``rest`` otherwise."""
    x, total = rng.random(), 0.0
    for name, p in rates.items():
        total += p
        if x < total:
            return name
    return rest


def _open_deadlines(s: Session, kind: str, ids: list[int]) -> dict[tuple[int, str], date]:
    from models.tables import Deadline, DeadlineStatus

    return {
        (d.item_id, d.name): d.due_on
        for chunk in _chunks(ids)
        for d in s.exec(
            select(Deadline).where(
                Deadline.kind == kind, col(Deadline.item_id).in_(chunk), Deadline.status == DeadlineStatus.OPEN
            )
        )
    }
