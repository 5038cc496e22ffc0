"""Action plans (issue 16 item 4): recommendations on a report, the service's plan built from
them, agreed or returned by the network, updated quarterly, chased, completed with evidence and
carried into the next programme year; through the use cases, on a real database."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from models import AuditEvent, Deadline, OutboxMessage
from models.portal import ActionMilestone, ActionPlan, PlanAction, Recommendation, Upload
from models.tables import Service
from notifications.render import rendered
from states import engine
from states.clock import FixedClock
from states.engine.sweep import run_sweep
from states.errors import GuardRefused, InvalidInput, InvalidTrigger, NotFound, PermissionDenied, StaleVersion
from states.policy import Policy
from states.principal import Principal
from states.services import action_plans as plans
from states.services import plan_pages
from states.services.recommendations import add_recommendation
from tests.factories import MRH
from tests.support_accounts import account
from tests.support_reports import drafting

OTHER = "Severnside Trauma Unit"  # another Trust's service
DAY = date(2027, 1, 11)  # Mon, in programme year 2026-27
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


class World:
    def __init__(self, db: Engine, session: Session, services: dict[str, int]) -> None:
        self.db, self.s = db, session
        self.svc = services[MRH]
        svc = session.get(Service, self.svc)
        assert svc is not None
        self.net, self.org = svc.network_id, svc.organisation_id
        self.lead = account(db, "Sam Lead", ("service-lead",), scope="service", scope_id=self.svc)
        self.ceo = account(db, "Cara Chief", ("chief-executive",), scope="organisation", scope_id=self.org)
        self.nm = account(db, "Nina Manager", ("network-manager",), scope="network", scope_id=self.net)
        self.office = account(db, "Olly Office", ("network-office",), scope="network", scope_id=self.net)
        self.other = account(db, "Otto Other", ("service-lead",), scope="service", scope_id=services[OTHER])
        self.commissioner = account(
            db, "Cass Commissioner", ("responsible-commissioner",), scope="service", scope_id=self.svc
        )
        self.report = drafting(session, services)

    def plan(self, pid: int) -> ActionPlan:
        self.s.expire_all()
        row = self.s.get(ActionPlan, pid)
        assert row is not None
        return row

    def act(self, who: Principal, pid: int, trigger: str, day: date = DAY, note: str | None = None) -> ActionPlan:
        row = plans.act(self.s, who, pid, trigger, note=note, version=self.plan(pid).version, clock=FixedClock(day))
        self.s.commit()
        return row

    def add(self, pid: int, text: str = "Recruit a second trauma coordinator", **kw: Any) -> PlanAction:
        kw.setdefault("milestones", [("Post advertised", DAY + timedelta(days=30))])
        a = plans.add_action(
            self.s,
            self.lead,
            pid,
            text,
            kw.pop("owner_name", "Dr Ann Owner"),
            version=self.plan(pid).version,
            clock=FixedClock(kw.pop("day", DAY)),
            **kw,
        )
        self.s.commit()
        return a

    def letters(self, pid: int, template: str) -> list[OutboxMessage]:
        return list(
            self.s.exec(
                select(OutboxMessage).where(
                    OutboxMessage.kind == "action_plan",
                    OutboxMessage.item_id == pid,
                    OutboxMessage.template == template,
                )
            )
        )

    def deadline(self, pid: int, name: str) -> Deadline | None:
        return self.s.exec(
            select(Deadline).where(
                Deadline.kind == "action_plan",
                Deadline.item_id == pid,
                Deadline.name == name,
                Deadline.status == "open",
            )
        ).first()

    def counts(self) -> tuple[int, ...]:
        return tuple(
            self.s.exec(select(func.count()).select_from(m)).one()
            for m in (AuditEvent, PlanAction, ActionMilestone, Upload, Recommendation, ActionPlan)
        )


@pytest.fixture
def w(db: Engine, session: Session, services: dict[str, int]) -> World:
    return World(db, session, services)


def _draft(w: World, **kw: Any) -> ActionPlan:
    row = plans.create_plan(w.s, w.lead, w.svc, 2026, report_id=w.report.id, clock=FixedClock(DAY), **kw)
    w.s.commit()
    return row


def test_the_whole_journey(w: World) -> None:
    rec = add_recommendation(w.s, w.office, w.report.id, "Appoint a trauma coordinator", "T-14", clock=FixedClock(DAY))
    w.s.commit()
    plan = _draft(w)
    assert plan.state == "draft" and plan.title == f"Action plan 2026-27, answering Report-{w.report.id}"
    page = plan_pages.plan_page(w.s, w.lead, plan.id, FixedClock(DAY))
    assert [r["text"] for r in page["recommendations"]] == ["Appoint a trauma coordinator"]
    assert page["may"]["add_action"] and not page["recommendations"][0]["answered"]

    a1 = w.add(plan.id, recommendation_id=rec.id, interim=False)
    a2 = w.add(plan.id, "Interim: senior nurse covers the role", interim=True, milestones=[])
    assert w.plan(plan.id).version == 4  # inserted (1), opened (2), each action added bumps it once
    w.act(w.lead, plan.id, "submit")
    assert w.plan(plan.id).state == "submitted"
    assert len(w.letters(plan.id, "action_plan_submitted")) == 1
    assert w.deadline(plan.id, "plan_review") is not None

    # the network returns it with comments; the service revises and resubmits
    with pytest.raises(Exception, match="needs a reason"):
        w.act(w.nm, plan.id, "return_plan")
    w.s.rollback()
    w.act(w.nm, plan.id, "return_plan", note="Give the coordinator post a start date")
    assert w.plan(plan.id).state == "returned" and w.plan(plan.id).comments == "Give the coordinator post a start date"
    assert "Give the coordinator post a start date" in (w.letters(plan.id, "action_plan_returned")[0].context or "")
    m = plans.add_milestone(
        w.s, w.lead, plan.id, a1.id, "Coordinator in post", DAY + timedelta(days=60),
        version=w.plan(plan.id).version, clock=FixedClock(DAY),
    )  # fmt: skip
    w.s.commit()
    w.act(w.lead, plan.id, "submit")
    w.act(w.nm, plan.id, "agree")
    agreed = w.plan(plan.id)
    assert agreed.state == "agreed" and agreed.agreed_on == DAY
    update = w.deadline(plan.id, "plan_update")
    assert update is not None and update.due_on == DAY + timedelta(weeks=13)
    assert w.deadline(plan.id, "plan_review") is None

    # a quarterly update closes the deadline and opens the next, counted from the update
    later = DAY + timedelta(days=7)
    w.act(w.lead, plan.id, "record_update", later, note="Post advertised; interviews in February")
    assert w.deadline(plan.id, "plan_update").due_on == later + timedelta(weeks=13)  # type: ignore[union-attr]

    # the sweep: the first milestone's date passes undone -> chased once, to the owner, cc the Network Manager
    first = DAY + timedelta(days=31)
    summary = run_sweep(w.db, FixedClock(first), Policy())
    chased = [a for a in summary.actions if a["action"] == "plan_milestone_chased"]
    assert len(chased) == 1 and chased[0]["id"] == plan.id
    letter = w.letters(plan.id, "plan_milestone_overdue")  # a chase: one message a person
    assert sorted(p["role"] for m in letter for p in m.to) == ["network-manager", "service-lead"], letter
    again = run_sweep(w.db, FixedClock(first + timedelta(days=1)), Policy())
    assert not [a for a in again.actions if a["action"] == "plan_milestone_chased"]
    w.s.expire_all()
    chase = w.s.exec(select(AuditEvent).where(AuditEvent.kind == "action_milestone")).one()
    assert chase.trigger == "chase_milestone" and chase.role == "system"

    # the quarterly update passes -> the overdue chase to the service, cc the Network Manager
    overdue_day = later + timedelta(weeks=13, days=1)
    run_sweep(w.db, FixedClock(overdue_day), Policy())
    overdue = w.letters(plan.id, "plan_update_overdue")
    assert sorted(p["role"] for m in overdue for p in m.to) == ["network-manager", "service-lead"]

    # an action completed with evidence (a statement and a file); a milestone marked done
    plans.mark_milestone_done(
        w.s, w.lead, plan.id, m.id, version=w.plan(plan.id).version, clock=FixedClock(overdue_day)
    )
    done = plans.complete_action(
        w.s, w.lead, plan.id, a2.id, "Rota attached", [("rota.pdf", PDF)],
        version=w.plan(plan.id).version, clock=FixedClock(overdue_day),
    )  # fmt: skip
    w.s.commit()
    assert done.status == "done" and done.done_on == overdue_day
    up = w.s.exec(select(Upload).where(Upload.owner_kind == "plan_action", Upload.owner_id == a2.id)).one()
    assert (up.item_kind, up.item_id, up.content_type) == ("action_plan", plan.id, "application/pdf")

    # not every action is done: complete is refused; carry forward opens next year's plan
    with pytest.raises(GuardRefused, match="are_all_actions_done"):
        w.act(w.lead, plan.id, "complete", overdue_day)
    w.s.rollback()
    w.act(w.lead, plan.id, "carry_forward", overdue_day)
    old = w.plan(plan.id)
    assert old.state == "carried_forward"
    nxt = w.s.exec(select(ActionPlan).where(ActionPlan.carried_from_id == plan.id)).one()
    assert (nxt.state, nxt.programme_year, nxt.service_id) == ("draft", 2027, w.svc)
    moved = w.s.get(PlanAction, a1.id)
    assert moved is not None and moved.status == "carried" and moved.carried_to_id is not None
    copy = w.s.get(PlanAction, moved.carried_to_id)
    assert copy is not None and copy.plan_id == nxt.id and copy.text == a1.text and copy.status == "open"
    copied = w.s.exec(select(ActionMilestone).where(ActionMilestone.action_id == copy.id)).all()
    assert [x.text for x in copied] == ["Post advertised"]  # the undone one only
    assert w.s.get(PlanAction, a2.id).status == "done"  # type: ignore[union-attr]
    # every step audited with the user who took it
    events = w.s.exec(
        select(AuditEvent)
        .where(AuditEvent.kind == "action_plan", AuditEvent.item_id == plan.id)
        .order_by(col(AuditEvent.id))
    ).all()
    assert [e.trigger for e in events] == [
        "open", "add_action", "add_action", "submit", "return_plan", "add_milestone", "submit", "agree",
        "record_update", "mark_milestone_done", "complete_action", "carry_forward",
    ]  # fmt: skip
    assert {e.actor for e in events} == {"Sam Lead", "Nina Manager"}
    assert events[-1].version == old.version
    opened = w.s.exec(select(AuditEvent).where(AuditEvent.kind == "action_plan", AuditEvent.item_id == nxt.id)).one()
    assert opened.trigger == "open" and opened.actor == "Sam Lead"
    # every letter of the plan renders, naming the plan and quoting what it is about
    sent = w.s.exec(select(OutboxMessage).where(OutboxMessage.kind == "action_plan")).all()
    assert {m.template for m in sent} == {
        "action_plan_submitted", "action_plan_returned", "action_plan_agreed", "plan_milestone_overdue",
        "plan_update_overdue",
    }  # fmt: skip
    for m in sent:
        text = rendered(m)
        assert f"Plan-{plan.id}" in text.subject and "{{" not in text.body_text and "Plan-" in text.body_html
    chase = next(rendered(m) for m in sent if m.template == "plan_milestone_overdue")
    assert "Post advertised" in chase.body_text and "Dr Ann Owner" in chase.body_text


def test_carry_forward_reuses_next_years_draft_and_complete_needs_every_action_done(w: World) -> None:
    plan = _draft(w)
    a = w.add(plan.id)
    b = w.add(plan.id, "Audit the handover")
    w.act(w.lead, plan.id, "submit")
    w.act(w.nm, plan.id, "agree")
    nxt = plans.create_plan(w.s, w.lead, w.svc, 2027, clock=FixedClock(DAY))
    w.s.commit()
    plans.complete_action(
        w.s, w.lead, plan.id, a.id, "Done: see minutes", version=w.plan(plan.id).version, clock=FixedClock(DAY)
    )
    w.s.commit()
    w.act(w.nm, plan.id, "carry_forward")  # the network may carry it forward too
    taken = w.s.exec(select(PlanAction).where(PlanAction.plan_id == nxt.id)).all()
    assert [t.text for t in taken] == ["Audit the handover"]
    assert w.plan(nxt.id).carried_from_id == plan.id and w.plan(nxt.id).version == 3
    assert w.s.exec(select(func.count()).select_from(ActionPlan)).one() == 2
    assert w.s.get(PlanAction, b.id).carried_to_id == taken[0].id  # type: ignore[union-attr]

    other = _draft(w)  # 2026 again: the first one closed
    c = w.add(other.id)
    w.act(w.lead, other.id, "submit")
    w.act(w.nm, other.id, "agree")
    plans.complete_action(
        w.s, w.lead, other.id, c.id, "Evidence", version=w.plan(other.id).version, clock=FixedClock(DAY)
    )
    w.s.commit()
    with pytest.raises(GuardRefused, match="has_open_actions"):
        w.act(w.lead, other.id, "carry_forward")
    w.s.rollback()
    w.act(w.lead, other.id, "complete")
    assert w.plan(other.id).state == "completed"
    assert len(w.letters(other.id, "action_plan_completed")) == 1


def test_who_may_do_what(w: World) -> None:
    plan = _draft(w)
    with pytest.raises(InvalidInput):  # has no actions
        plans.add_action(w.s, w.lead, plan.id, "x", "Dr A", milestones=[("m", DAY)], clock=FixedClock(DAY))
    w.s.rollback()
    with pytest.raises(GuardRefused, match="has_actions"):
        w.act(w.lead, plan.id, "submit")
    w.s.rollback()
    w.add(plan.id)
    with pytest.raises(PermissionDenied):  # the network cannot build or submit the service's plan
        plans.add_action(w.s, w.nm, plan.id, "x", "Dr A", clock=FixedClock(DAY))
    w.s.rollback()
    with pytest.raises(PermissionDenied):
        w.act(w.nm, plan.id, "submit")
    w.s.rollback()
    w.act(w.ceo, plan.id, "submit")  # the Chief Executive acts for the service, from the Trust's grant
    with pytest.raises(PermissionDenied):  # the service cannot agree its own plan
        w.act(w.lead, plan.id, "agree")
    w.s.rollback()
    with pytest.raises(PermissionDenied):  # network office: not the Network Manager or Regional Lead
        w.act(w.office, plan.id, "agree")
    w.s.rollback()
    # another Trust's service lead: the plan does not exist for them
    for call in (
        lambda: plan_pages.plan_page(w.s, w.other, plan.id, FixedClock(DAY)),
        lambda: plans.act(w.s, w.other, plan.id, "submit", clock=FixedClock(DAY)),
        lambda: plans.add_action(w.s, w.other, plan.id, "x", "Dr A", clock=FixedClock(DAY)),
        lambda: plans.create_plan(w.s, w.other, w.svc, 2026, clock=FixedClock(DAY)),
        lambda: plan_pages.plans_for_service(w.s, w.other, w.svc, FixedClock(DAY)),
    ):
        with pytest.raises(NotFound):
            call()
        w.s.rollback()
    # the commissioner sees it and can do nothing with it; the office may open a plan
    page = plan_pages.plan_page(w.s, w.commissioner, plan.id, FixedClock(DAY))
    assert page["plan"]["state"] == "submitted" and not any(page["may"].values()) and not page["steps"]
    nm_page = plan_pages.plan_page(w.s, w.nm, plan.id, FixedClock(DAY))
    assert set(nm_page["steps"]) == {"agree", "return_plan"}
    listed = plan_pages.plans_for_service(w.s, w.commissioner, w.svc, FixedClock(DAY))
    assert [p["id"] for p in listed["plans"]] == [plan.id] and not listed["may_create"]
    by_office = plans.create_plan(w.s, w.office, w.svc, 2027, clock=FixedClock(DAY))
    assert by_office.state == "draft"


def test_recommendations_are_recorded_by_staff_while_the_report_is_open(w: World) -> None:
    with pytest.raises(PermissionDenied):
        add_recommendation(w.s, w.lead, w.report.id, "Mine", clock=FixedClock(DAY))
    w.s.rollback()
    with pytest.raises(NotFound):
        add_recommendation(w.s, w.other, w.report.id, "Mine", clock=FixedClock(DAY))
    w.s.rollback()
    with pytest.raises(InvalidInput, match="risk"):
        add_recommendation(w.s, w.office, w.report.id, "Per risk", risk_id=2**70, clock=FixedClock(DAY))
    w.s.rollback()
    rec = add_recommendation(w.s, w.office, w.report.id, "  Audit triage  ", "T-1", clock=FixedClock(DAY))
    w.s.commit()
    assert rec.text == "Audit triage"
    event = w.s.exec(select(AuditEvent).where(AuditEvent.kind == "recommendation")).one()
    assert (event.item_id, event.actor, event.trigger) == (rec.id, "Olly Office", "add_recommendation")
    engine.fire(w.s, "report", w.report.id, "send_for_accuracy_check", principal=w.office, clock=FixedClock(DAY))
    w.s.commit()
    add_recommendation(w.s, w.office, w.report.id, "Still open", clock=FixedClock(DAY))
    w.s.commit()
    engine.fire(w.s, "report", w.report.id, "approve", principal=w.nm, clock=FixedClock(DAY))
    w.s.commit()
    with pytest.raises(InvalidInput, match="approved"):
        add_recommendation(w.s, w.office, w.report.id, "Too late", clock=FixedClock(DAY))


@pytest.mark.parametrize(
    "change",
    [
        {"text": ""},
        {"text": "x" * 5000},
        {"owner_name": "  "},
        {"owner_role": "network-manager"},
        {"owner_role": "'; drop table plan_action; --"},
        {"interim": "yes"},
        {"recommendation_id": 2**70},
        {"recommendation_id": -1},
        {"milestones": [("Past", DAY)]},
        {"milestones": [("No date", "2027-02-01")]},
        {"milestones": [("", DAY + timedelta(days=3))]},
        {"milestones": [("Far", date(2101, 1, 1))]},
        {"milestones": [("x",)]},
        {"milestones": [("m", DAY + timedelta(days=3))] * 21},
        {"text": "bell\x07"},
        {"owner_name": "Dr A\nBcc: evil@example.com"},
    ],
)
def test_hostile_input_is_one_clear_refusal_and_changes_nothing(w: World, change: dict[str, Any]) -> None:
    plan = _draft(w)
    before = w.counts()
    version = w.plan(plan.id).version
    args: dict[str, Any] = {"text": "Act", "owner_name": "Dr A", "milestones": [], **change}
    with pytest.raises(InvalidInput):
        plans.add_action(
            w.s,
            w.lead,
            plan.id,
            args.pop("text"),
            args.pop("owner_name"),
            version=version,
            clock=FixedClock(DAY),
            **args,
        )
    w.s.rollback()
    assert w.counts() == before and w.plan(plan.id).version == version


def test_stale_versions_ids_and_files_are_refused(w: World) -> None:
    plan = _draft(w)
    a = w.add(plan.id)
    before = w.counts()
    with pytest.raises(StaleVersion):
        plans.add_action(w.s, w.lead, plan.id, "Act", "Dr A", version=1, clock=FixedClock(DAY))
    w.s.rollback()
    for bad in (0, -5, 2**70):
        with pytest.raises(NotFound):
            plan_pages.plan_page(w.s, w.lead, bad, FixedClock(DAY))
        with pytest.raises(NotFound):
            plans.remove_action(w.s, w.lead, plan.id, bad, clock=FixedClock(DAY))
        with pytest.raises(NotFound):
            plans.mark_milestone_done(w.s, w.lead, plan.id, bad, clock=FixedClock(DAY))
        with pytest.raises(NotFound):
            plans.create_plan(w.s, w.lead, bad, 2026, clock=FixedClock(DAY))
        w.s.rollback()
    for year in (1999, 2100, True, "2026"):
        with pytest.raises(InvalidInput):
            plans.create_plan(w.s, w.lead, w.svc, year, clock=FixedClock(DAY))  # type: ignore[arg-type]
        w.s.rollback()
    with pytest.raises(InvalidInput, match="already has plan"):
        plans.create_plan(w.s, w.lead, w.svc, 2026, report_id=w.report.id, clock=FixedClock(DAY))
    w.s.rollback()
    with pytest.raises((InvalidTrigger, InvalidInput)):  # not agreed yet: nothing to complete
        plans.complete_action(w.s, w.lead, plan.id, a.id, "e", clock=FixedClock(DAY))
    w.s.rollback()
    assert w.counts() == before
    w.act(w.lead, plan.id, "submit")
    w.act(w.nm, plan.id, "agree")
    before = w.counts()
    v = w.plan(plan.id).version
    for files in ([("evil.pdf", b"MZ\x90\x00binary\x00")], [("../x.pdf", PDF)], [("a.docx", PDF)], [("e.pdf", b"")]):
        with pytest.raises(InvalidInput):
            plans.complete_action(w.s, w.lead, plan.id, a.id, "Evidence", files, version=v, clock=FixedClock(DAY))
        w.s.rollback()
    with pytest.raises(InvalidInput, match="evidence"):
        plans.complete_action(w.s, w.lead, plan.id, a.id, "   ", version=v, clock=FixedClock(DAY))
    w.s.rollback()
    with pytest.raises((InvalidTrigger, InvalidInput)):  # an agreed plan takes no new actions
        plans.add_action(w.s, w.lead, plan.id, "Late", "Dr A", version=v, clock=FixedClock(DAY))
    w.s.rollback()
    with pytest.raises(InvalidInput):  # not a plan step
        plans.act(w.s, w.lead, plan.id, "open", clock=FixedClock(DAY))
    w.s.rollback()
    assert w.counts() == before and w.plan(plan.id).version == v
    assert w.s.get(PlanAction, a.id).status == "open"  # type: ignore[union-attr]


def test_a_content_step_fired_bare_is_refused(w: World) -> None:
    """The internal steps need the rows their use case wrote: fired without them (or naming another
    plan's action) the engine refuses, so nobody can bump a plan's version with an empty change."""
    plan = _draft(w)
    other = plans.create_plan(w.s, w.lead, w.svc, 2027, clock=FixedClock(DAY))
    w.s.commit()
    a = w.add(other.id)
    for params in (None, {"rows": []}, {"rows": "x"}, {"rows": [{"action": a.id}]}, {"rows": [{"action": "1"}]}):
        with pytest.raises(InvalidInput):
            engine.fire(
                w.s, "action_plan", plan.id, "add_action", principal=w.lead, clock=FixedClock(DAY), params=params
            )
        w.s.rollback()
    with pytest.raises(InvalidInput):
        engine.fire(
            w.s, "action_plan", plan.id, "take_carried", principal=w.lead, clock=FixedClock(DAY),
            params={"rows": [{"action": a.id}]},
        )  # fmt: skip


def test_remove_action_and_its_milestones(w: World) -> None:
    plan = _draft(w)
    a = w.add(plan.id)
    plans.remove_action(w.s, w.lead, plan.id, a.id, version=w.plan(plan.id).version, clock=FixedClock(DAY))
    w.s.commit()
    assert w.s.get(PlanAction, a.id) is None
    assert w.s.exec(select(func.count()).select_from(ActionMilestone)).one() == 0
    last = w.s.exec(
        select(AuditEvent).where(AuditEvent.kind == "action_plan").order_by(col(AuditEvent.id).desc())
    ).first()
    assert last is not None and last.trigger == "remove_action" and last.data["params"]["rows"][0]["action"] == a.id


def test_the_sweep_reminds_of_the_update_and_lets_a_late_review_show(w: World) -> None:
    plan = _draft(w)
    w.add(plan.id)
    w.act(w.lead, plan.id, "submit")
    review = w.deadline(plan.id, "plan_review")
    assert review is not None
    late = run_sweep(w.db, FixedClock(review.due_on + timedelta(days=1)), Policy())
    assert not [x for x in late.skipped if x["kind"] == "action_plan"]
    page = plan_pages.plan_page(w.s, w.nm, plan.id, FixedClock(review.due_on + timedelta(days=1)))
    assert [d["name"] for d in page["deadlines"] if d["overdue"]] == ["plan review"]
    w.act(w.nm, plan.id, "agree", review.due_on + timedelta(days=1))
    update = w.deadline(plan.id, "plan_update")
    assert update is not None and update.remind_on is not None
    run_sweep(w.db, FixedClock(update.remind_on), Policy())
    reminders = w.letters(plan.id, "plan_update_reminder")
    assert [p["role"] for m in reminders for p in m.to] == ["service-lead"]
    assert update.due_on.strftime("%-d %b %Y") in rendered(reminders[0]).body_text
