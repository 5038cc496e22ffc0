"""Property-based: random walks over the risk machine through the engine (not the CLI).

A Hypothesis ``RuleBasedStateMachine`` raises risks, fires random triggers with random roles,
notes and parameters, moves a fixed clock forward and runs the chase sweep. Refusals
(``PeerwatchError``) are expected and must change nothing. After every step:

- the audit log replays to the current state of every risk;
- no outbox idempotency key is queued twice; no deadline is pending twice at once;
- pending deadlines belong to open items, and closed/withdrawn items have none;
and every sweep, run again on the same date, does nothing. ``RiskMachine`` moves the clock
one second per step, like a real clock; ``FrozenClockRiskMachine`` holds it at noon, as
``--as-of`` does, so steps can share an instant.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlmodel import Session, func, select

from models import AuditEvent, Deadline, DeadlineStatus, OutboxMessage, Risk, init_db
from states import engine
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from states.errors import PeerwatchError
from states.machines.spec import get_spec
from states.policy import Policy
from states.roles import ACTOR_ROLES, NETWORK_LEADS, STAFF
from tests.databases import ON_POSTGRES, database_for_test, release
from tests.factories import person
from tests.factories import reference_data as seed_reference

SPEC = get_spec("risk")
TRIGGERS = SPEC.triggers()
TERMINAL = SPEC.terminal
PENDING = (DeadlineStatus.OPEN.value, DeadlineStatus.PAUSED.value)
DEADLINE_NAMES = sorted(SPEC.deadline_rules)
START = date(2026, 12, 11)  # a Friday
LONDON = ZoneInfo("Europe/London")

ROLES = st.one_of(st.sampled_from(sorted(NETWORK_LEADS)), st.sampled_from(ACTOR_ROLES))
NOTES = st.sampled_from([None, "", "   ", "reason recorded at the network board"])
SCORE = st.one_of(
    st.none(),
    st.tuples(st.integers(1, 6), st.integers(1, 6)),
    st.tuples(st.integers(0, 7), st.integers(0, 7)),  # sometimes off the 6x6 matrix
)
DIGITS = st.one_of(st.integers(-1, 8).map(str), st.sampled_from(["x", ""]))


def _state(db: Any, rid: int) -> str:
    with Session(db) as s:
        row = s.get(Risk, rid)
        assert row is not None
        return row.state


def _params_for(trigger: str, today: date) -> st.SearchStrategy[dict[str, Any]]:
    """Parameters a trigger reads, usually well-formed, sometimes not."""
    if trigger == "rescore":
        return st.one_of(
            st.fixed_dictionaries({"impact": st.integers(1, 6).map(str), "likelihood": st.integers(1, 6).map(str)}),
            st.fixed_dictionaries({"impact": DIGITS, "likelihood": DIGITS}),
            st.fixed_dictionaries({"impact": st.integers(1, 6).map(str)}),
        )
    if trigger == "extend_deadline":
        return st.one_of(
            st.fixed_dictionaries({"days": st.integers(1, 10).map(str)}),
            st.fixed_dictionaries({"days": DIGITS}),
            st.fixed_dictionaries({"days": st.integers(1, 10).map(str), "deadline": st.sampled_from(DEADLINE_NAMES)}),
            st.fixed_dictionaries(
                {"until": st.integers(-5, 40).map(lambda n: (today + timedelta(days=n)).isoformat())}
            ),
            st.fixed_dictionaries({"until": st.just("2027-02-30")}),
            st.fixed_dictionaries({"days": st.just("3"), "until": st.just("2027-06-01")}),
        )
    return st.just({})


def _snapshot(db: Any, rid: int | None) -> dict[str, Any]:
    """What a refused step must leave as it was (read in a fresh session)."""
    with Session(db) as s:
        out: dict[str, Any] = {
            "risks": s.exec(select(func.count()).select_from(Risk)).one(),
            "audit": s.exec(select(func.count()).select_from(AuditEvent)).one(),
            "outbox": s.exec(select(func.count()).select_from(OutboxMessage)).one(),
            "deadlines": s.exec(select(func.count()).select_from(Deadline)).one(),
        }
        if rid is not None:
            row = s.get(Risk, rid)
            assert row is not None
            out["row"] = row.model_dump()
            out["row_deadlines"] = [
                (d.id, d.name, d.status, d.due_on, d.remind_on, d.reminded, d.paused_remaining)
                for d in s.exec(
                    select(Deadline).where(Deadline.kind == "risk", Deadline.item_id == rid).order_by(Deadline.id)
                )  # type: ignore[arg-type]
            ]
    return out


def _counts(db: Any) -> tuple[int, int]:
    with Session(db) as s:
        return (
            s.exec(select(func.count()).select_from(AuditEvent)).one(),
            s.exec(select(func.count()).select_from(OutboxMessage)).one(),
        )


class RiskMachine(RuleBasedStateMachine):
    """The clock only moves forward: ``advance`` moves it 0-15 days, and every raise or fire
    happens one second after the previous one (from noon, London), as with a real clock.
    ``FrozenClockRiskMachine`` keeps it at noon of the day instead, as ``--as-of`` does."""

    FROZEN_TIME = False

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="peerwatch-stateful-")
        self.url = database_for_test(self.tmp)
        self.db = init_db(self.url)
        with Session(self.db, expire_on_commit=False) as s:
            self.services = sorted(seed_reference(s).values())
            s.commit()
        assert self.services
        self.today = START
        self.tick = 0
        self.clock = FixedClock(START)
        self.policy = Policy()  # the defaults, whatever the environment says
        self.ids: list[int] = []

    def teardown(self) -> None:
        release(self.url)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _set_clock(self) -> None:
        """Noon (London) on ``today``, plus one second per step taken so far unless time is frozen."""
        if self.FROZEN_TIME:
            self.clock = FixedClock(self.today)
        else:
            self.clock = FixedClock(
                datetime.combine(self.today, time(12, self.tick // 60, self.tick % 60), tzinfo=LONDON)
            )

    def _step_time(self) -> None:
        self.tick += 1
        self._set_clock()

    # ------------------------------------------------------------ rules

    @initialize(
        levels=st.lists(st.sampled_from(["IR", "SC", "GC"]), min_size=1, max_size=3),
        score=st.one_of(st.none(), st.tuples(st.integers(1, 6), st.integers(1, 6))),
        back=st.integers(0, 8),
    )
    def start_with_risks(self, levels: list[str], score: tuple[int, int] | None, back: int) -> None:
        """Every walk starts with one to three risks raised by the Network Manager."""
        for i, level in enumerate(levels):
            self.raise_risk(
                level=level, score=score, dit=bool(i % 2), svc=i, back=back, role="network-manager", note=None
            )

    @rule(
        level=st.sampled_from(["IR", "SC", "GC"]),
        score=SCORE,
        dit=st.booleans(),
        svc=st.integers(0, 10),
        back=st.integers(0, 8),
        role=ROLES,
        note=NOTES,
    )
    def raise_risk(
        self, level: str, score: tuple[int, int] | None, dit: bool, svc: int, back: int, role: str, note: str | None
    ) -> None:
        found = self.today - timedelta(days=back)
        impact, likelihood = score if score else (None, None)
        row = Risk(
            service_id=self.services[svc % len(self.services)],
            level=level,
            title=f"{level} found at visit",
            identified_on=found,
            visit_date=found,
            impact=impact,
            likelihood=likelihood,
            doctors_in_training=dit,
            state="new",
        )
        valid_score = score is None or all(1 <= v <= 6 for v in score)
        self._step_time()
        before = _snapshot(self.db, None)
        with Session(self.db, expire_on_commit=False) as s:
            try:
                out = engine.create(
                    s, "risk", row, "raise", principal=person("panel lead", role), clock=self.clock, note=note
                )
            except PeerwatchError:
                s.rollback()
                refused = True
            else:
                s.commit()
                refused = False
        if refused:
            assert role not in STAFF or not valid_score, f"raise refused for {role} with score {score}"
            assert _snapshot(self.db, None) == before
            return
        assert role in STAFF and valid_score, f"raise accepted for {role} with score {score}"
        assert out.row.state == ("work_programme" if level == "GC" else "identified")
        assert out.row.id is not None
        self.ids.append(out.row.id)

    @precondition(lambda self: bool(self.ids))
    @rule(pick=st.integers(0, 1000), data=st.data(), role=ROLES, note=NOTES, use_params=st.booleans())
    def fire_anything(self, pick: int, data: st.DataObject, role: str, note: str | None, use_params: bool) -> None:
        """Any trigger on any risk, in any role: mostly refusals."""
        rid = self.ids[pick % len(self.ids)]
        trigger = data.draw(st.sampled_from(TRIGGERS), label="trigger")
        params = data.draw(_params_for(trigger, self.today), label="params") if use_params else {}
        self._fire(rid, trigger, role, note, params)

    @precondition(lambda self: bool(self.ids))
    @rule(pick=st.integers(0, 1000), burst=st.integers(1, 3), data=st.data())
    def fire_plausible(self, pick: int, burst: int, data: st.DataObject) -> None:
        """1-3 triggers the risk's state allows, usually in a permitted role, with a note and parameters."""
        open_ids = [i for i in self.ids if _state(self.db, i) not in TERMINAL] or self.ids
        rid = open_ids[pick % len(open_ids)]
        for _ in range(burst):
            self._fire_plausible(rid, data)

    def _fire_plausible(self, rid: int, data: st.DataObject) -> None:
        state = _state(self.db, rid)
        allowed = SPEC.allowed_from(state) or TRIGGERS
        trigger = data.draw(st.sampled_from(allowed), label="trigger")
        permitted = sorted({r for row in SPEC.rows_for(trigger, state) for r in row["roles"]}) or list(ACTOR_ROLES)
        role = data.draw(
            st.sampled_from(permitted) if data.draw(st.integers(0, 9)) else st.sampled_from(ACTOR_ROLES), label="role"
        )
        note = (
            "reason recorded at the network board" if data.draw(st.integers(0, 9)) else data.draw(NOTES, label="note")
        )
        params = data.draw(_params_for(trigger, self.today), label="params") if data.draw(st.integers(0, 9)) else {}
        self._fire(rid, trigger, role, note, params)

    def _fire(self, rid: int, trigger: str, role: str, note: str | None, params: dict[str, Any]) -> None:
        before = _snapshot(self.db, rid)
        state = before["row"]["state"]
        self._step_time()
        with Session(self.db, expire_on_commit=False) as s:
            try:
                out = engine.fire(
                    s,
                    "risk",
                    rid,
                    trigger,
                    principal=person("tester", role),
                    clock=self.clock,
                    note=note,
                    params=params,
                    policy=self.policy,
                )
            except PeerwatchError as exc:
                s.rollback()
                refused: PeerwatchError | None = exc
            else:
                s.commit()
                refused = None
        if refused is not None:
            event(f"refused {type(refused).__name__}")
            assert _snapshot(self.db, rid) == before, (
                f"refused {trigger} by {role} on risk {rid} changed something: {refused}"
            )
            return
        # an accepted trigger was allowed from the state, by this role, with a note when one is needed
        rows = SPEC.rows_for(trigger, state)
        assert rows, f"{trigger} accepted from {state}"
        assert any(role in r["roles"] for r in rows), f"{trigger} accepted for role {role}"
        if any(r.get("note_required") for r in rows):
            assert note and note.strip(), f"{trigger} accepted without a note"
        assert out.event.from_state == state and out.event.trigger == trigger
        event(f"fired {trigger}")
        event(f"reached {out.row.state}")
        after = _snapshot(self.db, rid)
        assert after["audit"] == before["audit"] + 1
        assert after["row"]["version"] == before["row"]["version"] + 1, (
            before["row"]["version"],
            after["row"]["version"],
        )

    @rule(days=st.integers(0, 15))
    def advance(self, days: int) -> None:
        self.today += timedelta(days=days)
        self._set_clock()

    @rule(days=st.integers(1, 15))
    def advance_with_daily_sweeps(self, days: int) -> None:
        """Day by day, sweeping every day as the scheduled chase flow does (reminder days included)."""
        for _ in range(days):
            self.advance(1)
            self.sweep()

    @rule()
    def sweep(self) -> None:
        first = run_sweep(self.db, self.clock, policy=self.policy)
        assert first.as_of == self.today
        assert first.skipped == [], first.skipped
        for action in first.actions:
            event(f"sweep {action['action']}")
        counts = _counts(self.db)
        second = run_sweep(self.db, self.clock, policy=self.policy)
        assert second.actions == [], second.actions
        assert second.skipped == [], second.skipped
        assert _counts(self.db) == counts, "the second sweep of the day wrote audit events or letters"

    # ------------------------------------------------------------ invariants

    @invariant()
    def audit_log_replays_to_the_current_state(self) -> None:
        with Session(self.db) as s:
            risks = {r.id: r for r in s.exec(select(Risk))}
            events: dict[int, list[AuditEvent]] = {}
            for e in s.exec(select(AuditEvent).where(AuditEvent.kind == "risk").order_by(AuditEvent.id)):  # type: ignore[arg-type]
                events.setdefault(e.item_id, []).append(e)
        assert set(risks) == set(self.ids) == set(events), (sorted(risks), sorted(self.ids), sorted(events))
        for rid, row in risks.items():
            state = "new"
            for e in events[rid]:
                assert e.from_state == state, (
                    f"risk {rid}: event {e.id} ({e.trigger}) from {e.from_state}, expected {state}"
                )
                state = e.to_state
            assert state == row.state, f"risk {rid}: log replays to {state}, row is {row.state}"
            assert events[rid][0].trigger == "raise"
            assert [e.at for e in events[rid]] == sorted(e.at for e in events[rid]), f"risk {rid}: audit times go back"
            versions = [e.version for e in events[rid]]
            assert versions == sorted(set(versions)), f"risk {rid}: event versions {versions} not increasing"
            assert versions[-1] == row.version, (
                f"risk {rid}: last event ({events[rid][-1].trigger}) has version {versions[-1]}, row has {row.version}"
            )

    @invariant()
    def no_letter_queued_twice(self) -> None:
        with Session(self.db) as s:
            keys = list(s.exec(select(OutboxMessage.idempotency_key)))
        dupes = [k for k, n in Counter(keys).items() if n > 1]
        assert not dupes, dupes

    @invariant()
    def no_deadline_pending_twice(self) -> None:
        with Session(self.db) as s:
            pending = list(s.exec(select(Deadline).where(Deadline.status.in_(PENDING))))  # type: ignore[attr-defined]
        dupes = [k for k, n in Counter((d.kind, d.item_id, d.name) for d in pending).items() if n > 1]
        assert not dupes, dupes

    @invariant()
    def pending_deadlines_belong_to_open_items(self) -> None:
        with Session(self.db) as s:
            states = {r.id: r.state for r in s.exec(select(Risk))}
            pending = list(s.exec(select(Deadline).where(Deadline.status.in_(PENDING))))  # type: ignore[attr-defined]
        for d in pending:
            assert d.kind == "risk" and d.item_id in states, d
            assert states[d.item_id] not in TERMINAL, (
                f"risk {d.item_id} is {states[d.item_id]} but {d.name} is {d.status}"
            )
            assert d.status == DeadlineStatus.OPEN or d.paused_remaining is not None, d


SETTINGS = settings(
    # the machine's rules do not depend on the database: the PostgreSQL pass runs fewer sequences
    # (each on a schema of its own), enough to show they are stored and read back the same
    max_examples=12 if ON_POSTGRES else 25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

TestRiskMachine = RiskMachine.TestCase
TestRiskMachine.settings = SETTINGS


class FrozenClockRiskMachine(RiskMachine):
    """The same walk with the clock frozen at noon between ``advance`` steps, as the CLI's
    ``--as-of DATE`` does: two steps on one item can happen at the very same instant, so a
    trigger that changes no column (record_progress, pause_clock, ...) must still bump the
    version once."""

    FROZEN_TIME = True


TestFrozenClockRiskMachine = FrozenClockRiskMachine.TestCase
TestFrozenClockRiskMachine.settings = SETTINGS


def test_same_instant_record_progress_keeps_row_and_audit_versions_equal(
    session: Session,
    raise_risk: Any,
    clock: FixedClock,
) -> None:
    """A trigger that changes no column, at the very instant of the previous change, still bumps
    the version once (regression: SQLAlchemy issued no UPDATE, so the engine raised RuntimeError,
    and before that recorded an audit event whose version was ahead of the row's)."""
    row = raise_risk("GC")
    out = engine.fire(
        session,
        "risk",
        row.id,
        "record_progress",
        principal=person("A", "network-office"),
        clock=clock,
        note="quarterly review",
    )
    session.commit()
    with Session(session.get_bind()) as fresh:
        stored = fresh.get(Risk, row.id)
        assert stored is not None
        assert out.event.version == stored.version == 3, (
            f"event version {out.event.version}, row version {stored.version}"
        )
        assert stored.state == "work_programme"
