"""What the synthetic people of the workload simulation (``flows.simulation``) do: each item's
next step, drawn from the rates with the run's seeded ``random.Random`` when the item reaches a state."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from models.tables import AccuracyItem, Deadline, DeadlineStatus, PanelMember, Proposal, Risk
from states.machines.spec import get_spec
from states.roles import NETWORK_MANAGER, NETWORK_OFFICE, REGIONAL_LEAD

if TYPE_CHECKING:
    from flows.simulation import Run

APPEAL = "__appeal__"  # a step that submits an appeal (states.services.appeal.submit), not a trigger


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


def chunks(items: list[Any], size: int = 900) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


class Behaviour:
    """Each item's next step, drawn from the rates when the item reaches a state."""

    def __init__(self, run: Run) -> None:
        self.run, self.r, self.rng, self.cal, self.memo = run, run.r, run.rng, run.cal, run.memo

    def plan(self, s: Session, kind: str, ids: list[int], day: date) -> None:
        """Plan the next step of items that reached a new version (loaded in one query per kind)."""
        model = get_spec(kind).model
        rows = sorted(
            (row for chunk in chunks(ids) for row in s.exec(select(model).where(col(model.id).in_(chunk)))),
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
        panel: dict[int, list[tuple[int, date | None]]] = defaultdict(list)
        ids = [r.id for r in rows if r.state == "service_notified"]
        for chunk in chunks(ids):
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
        for chunk in chunks(ids):
            for i in s.exec(
                select(AccuracyItem).where(col(AccuracyItem.report_id).in_(chunk)).order_by(AccuracyItem.id)
            ):  # type: ignore[arg-type]
                items[i.report_id].append(i)
        visits = [r.visit_id for r in rows if r.state == "published" and r.visit_id]
        risks: dict[int, list[int]] = defaultdict(list)
        for chunk in chunks(visits):
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
            for chunk in chunks(ids)
            for p in s.exec(
                select(Proposal).where(
                    Proposal.kind == "appeal", Proposal.trigger == "decide", col(Proposal.item_id).in_(chunk)
                )
            )
        }
        risk_ids = [g["risk_id"] for r in rows for g in r.grounds if "risk_id" in g]
        open_risks = {
            i
            for chunk in chunks(risk_ids)
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
    return {
        (d.item_id, d.name): d.due_on
        for chunk in chunks(ids)
        for d in s.exec(
            select(Deadline).where(
                Deadline.kind == kind, col(Deadline.item_id).in_(chunk), Deadline.status == DeadlineStatus.OPEN
            )
        )
    }
