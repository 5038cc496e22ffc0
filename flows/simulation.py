"""The workload simulation: synthetic networks walked day by day through the real code.

``simulate`` builds a fresh SQLite *training* database of its own (never the user's: its dates
are simulated, its letters never sent over SMTP) with N synthetic networks, half on the annual (West Midlands) and half on the biennial (Cheshire & Mersey)
programme, each with S services in synthetic Trusts and a contact for every role a letter
can need. Then, for each day from ``start`` to ``end`` it runs what the deployments run:

- 06:30 every day, the ``cycle`` flow's work: ``states.services.cycle.plan_year`` for each network,
  then ``states.engine.sweep.run_sweep``;
- 07:00 Monday-Friday, the ``chase`` flow's work: ``run_sweep`` again;
- noon on working days, the people: network staff record what the synthetic Trusts, services
  and reviewers do, through ``states.engine``, each a named account granted its role for its
  own network (``flows.simulation_world.cast``: a Network Manager, a Regional Lead and the
  network office per network), acting as that account does with ``--as`` in a training
  database (``Behaviour`` draws when, with a seeded ``random.Random``);
- 18:00, the ``dispatch`` flow's work: ``notifications.dispatch.dispatch`` to a
  ``MemoryTransport`` emptied after each run (the simulation only counts what was sent).

Visits follow the programme files: a phase whose title begins with ``Rates.visit_phase_pattern``
("Peer review visits ..." in the annual file, "Formal peer review meetings" in year 1 of
the biennial one) is when each network visits its services. The workload is then counted
from the audit log and the outbox (``states.views.workload``), never from counters kept here.

The synthetic world (settings, rates, networks) is built in ``flows.simulation_world``; what the
people do (``Behaviour``) is drawn in ``flows.simulation_behaviour``.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from flows.simulation_behaviour import APPEAL, Behaviour, Step, chunks
from flows.simulation_world import Rates, Settings, World, build_world, cast, fresh_database
from models.cycle import ProgrammePhase
from models.db import begin_write
from models.tables import Network, Visit
from notifications.dispatch import dispatch
from notifications.transports import MemoryTransport
from states import engine
from states.calendar import calendar_for
from states.clock import FixedClock, local_date
from states.engine import keys
from states.engine.sweep import run_sweep
from states.engine.system import SYSTEM_PRINCIPAL
from states.errors import PeerwatchError
from states.machines.spec import get_spec
from states.policy import Policy
from states.principal import Principal
from states.programmes import programme_for, programme_year_of
from states.roles import NETWORK_MANAGER
from states.services.appeal import submit
from states.services.cycle import plan_year
from states.views import workload
from states.views.weighting import candidates

__all__ = ["Rates", "Run", "Settings", "simulate", "visit_phase_keys"]

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


def simulate(settings: Settings, on_day: Callable[[date], None] | None = None) -> dict[str, Any]:
    """Run the simulation into ``settings.out`` and return the workload (states.views.workload)."""
    settings.check()
    with _audit_key(settings.out):
        return _simulate(settings, on_day)


@contextmanager
def _audit_key(out: Path) -> Iterator[None]:
    """The installation's audit key if one is set up; else a key of the simulation's own in
    ``out`` (its database is thrown away with it), for the length of the run."""
    if keys.load(required=False) is not None:
        yield
        return
    before = os.environ.get("PEERWATCH_AUDIT_KEY_FILE")
    path = out / "audit.key"
    out.mkdir(parents=True, exist_ok=True)
    keys.create_key_file(path)
    os.environ["PEERWATCH_AUDIT_KEY_FILE"] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PEERWATCH_AUDIT_KEY_FILE", None)
        else:
            os.environ["PEERWATCH_AUDIT_KEY_FILE"] = before


def _simulate(settings: Settings, on_day: Callable[[date], None] | None) -> dict[str, Any]:
    began = time.perf_counter()
    db = fresh_database(settings.out)
    with Session(db, expire_on_commit=False) as s:
        world = build_world(s, settings)
        people = cast(s, world.networks, FixedClock(settings.start))
        s.commit()
    run = Run(db, settings, world, people)
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


# ---------------------------------------------------------------- the run, day by day


class Run:
    """One simulation: the flows' work each day, and the people between them."""

    def __init__(self, db: Engine, settings: Settings, world: World, people: dict[int, dict[str, Principal]]) -> None:
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
        self.actors = people  # network id -> role -> the account acting in it there
        self.visit_keys = {n.id: visit_phase_keys(n, self.r.visit_phase_pattern) for n in world.networks}

    def day(self, day: date) -> None:
        self.clock.set(day, 6)  # the cycle flow, early every morning
        with Session(self.db, expire_on_commit=False) as s:
            for net in s.exec(select(Network).order_by(Network.id)):  # type: ignore[arg-type]
                plan_year(s, net, programme_year_of(day), self.clock, principal=SYSTEM_PRINCIPAL)
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
                        for chunk in chunks(only[kind])
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
            for chunk in chunks(group, BATCH):
                if self._fire_batch(chunk, self.actors[net_id][role]):
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

    def _fire_batch(self, steps: list[Step], principal: Principal) -> bool:
        requests = [engine.Request(st.kind, st.item_id, st.trigger, st.note, st.version, st.params) for st in steps]
        try:
            with Session(self.db, expire_on_commit=False) as s:
                begin_write(s)
                engine.fire_many(s, requests, principal=principal, clock=self.clock, policy=self.policy)
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
                    principal=actor,
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

    def _appeal(self, st: Step, actor: Principal) -> bool:
        params = st.params or {}
        submit(
            self.db,
            report_id=st.item_id,
            appellant_contact_id=params["appellant"],
            statement=str(st.note),
            grounds=params["grounds"],
            principal=actor,
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
                    principal=self.actors[net.id][NETWORK_MANAGER],
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
