"""A service's action plan (000 s5.4, s6 step 5; seed 001: outstanding actions carried forward).

The service (its Service Lead, Service Manager, Lead Doctor, Lead Nurse, Chief Executive or
Medical Director) builds the plan in ``draft``: actions answering the report's recommendations,
each with a named owner, interim or not, with dated milestones. It ``submit``s it; the Network
Manager or Regional Lead ``agree`` it, or ``return_plan`` it with comments (the note), and the
service revises and submits again. While ``agreed`` the service records progress
(``record_update``, a note), which closes the quarterly ``plan_update`` deadline and opens the
next (local policy ``plan_update_weeks``, default 13 weeks, counted from the update); it
completes actions with evidence and marks milestones done. The plan is ``completed`` when every
action is done, or ``carried_forward``: its open actions move into the service's plan for the
next programme year (one in draft or returned is reused, else a new one is opened), each old
action marked ``carried`` with the new one's id, and the old plan closes.

A change to the plan's contents (an action added or removed, a milestone added or done, an
action completed) is an internal transition of the plan, so it is version-checked and audited
like any other; the use cases (``states/services/action_plans.py``) write the rows and name
them in ``rows`` (a structured parameter: no generic form offers these steps).
A submitted plan waits for the network's judgement: ``plan_review``, owned by the Network
Manager, due ``REVIEW_WORKING_DAYS`` (local policy, default 10) working days after submission.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, func, select

from models.portal import ActionMilestone, ActionPlan, PlanAction
from states.errors import InvalidInput
from states.machines.spec import Context, DeadlineRule, Effects, FollowOn, KindSpec, Letter, NewDeadline
from states.roles import NETWORK_LEADS, STAFF
from states.scope import nation_of, recipient_scope, service_context

# Who acts for the service (DOMAIN.md "Who enters what": the organisation, CEO / MD / Service Lead).
SERVICE_ROLES = (
    "service-lead",
    "service-manager",
    "lead-doctor",
    "lead-nurse",
    "chief-executive",
    "medical-director",
)
REVIEW_WORKING_DAYS = 10  # local policy default: the seeds set no time for agreeing a plan
OPEN, DONE, CARRIED = "open", "done", "carried"


class PlanState(StrEnum):
    NEW = "new"
    DRAFT = "draft"
    SUBMITTED = "submitted"
    RETURNED = "returned"
    AGREED = "agreed"
    COMPLETED = "completed"
    CARRIED_FORWARD = "carried_forward"


P = PlanState
SERVICE = list(SERVICE_ROLES)
LEADS = sorted(NETWORK_LEADS)
EDITABLE = [P.DRAFT, P.RETURNED]
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "open", "source": P.NEW, "dest": P.DRAFT, "roles": [*SERVICE, *sorted(STAFF)]},
    {"trigger": "add_action", "source": EDITABLE, "dest": None, "roles": SERVICE},
    {"trigger": "remove_action", "source": EDITABLE, "dest": None, "roles": SERVICE},
    {"trigger": "add_milestone", "source": EDITABLE, "dest": None, "roles": SERVICE},
    {"trigger": "take_carried", "source": EDITABLE, "dest": None, "roles": [*SERVICE, *LEADS]},
    {"trigger": "submit", "source": EDITABLE, "dest": P.SUBMITTED, "roles": SERVICE, "conditions": ["has_actions"]},
    {"trigger": "agree", "source": P.SUBMITTED, "dest": P.AGREED, "roles": LEADS},
    {"trigger": "return_plan", "source": P.SUBMITTED, "dest": P.RETURNED, "roles": LEADS, "note_required": True},
    {"trigger": "record_update", "source": P.AGREED, "dest": None, "roles": SERVICE, "note_required": True},
    {"trigger": "complete_action", "source": P.AGREED, "dest": None, "roles": SERVICE},
    {"trigger": "mark_milestone_done", "source": P.AGREED, "dest": None, "roles": SERVICE},
    {
        "trigger": "complete",
        "source": P.AGREED,
        "dest": P.COMPLETED,
        "roles": [*SERVICE, *LEADS],
        "conditions": ["are_all_actions_done"],
    },
    {
        "trigger": "carry_forward",
        "source": P.AGREED,
        "dest": P.CARRIED_FORWARD,
        "roles": [*SERVICE, *LEADS],
        "conditions": ["has_open_actions"],
    },
]
TO_SERVICE = ("service-lead",)
DEADLINE_RULES = {
    "plan_review": DeadlineRule(owner="network-manager", step="agree the action plan, or return it with comments"),
    "plan_update": DeadlineRule(
        owner="service-lead",
        step="record the quarterly progress update on the action plan",
        reminder=Letter("plan_update_reminder", to=TO_SERVICE, category="reminder"),
        overdue=Letter("plan_update_overdue", to=TO_SERVICE, cc=("network-manager",), category="chase"),
    ),
}
NEXT_STEP = {
    P.DRAFT: "Service: add the actions (owners, milestones) and submit the plan",
    P.SUBMITTED: "Network Manager or Regional Lead: agree the plan, or return it with comments",
    P.RETURNED: "Service: revise the plan as the comments ask and submit it again",
    P.AGREED: "Service: record progress each quarter; complete the actions with evidence",
}


def _count(session: Session, plan_id: int, *statuses: str) -> int:
    q = select(func.count()).select_from(PlanAction).where(PlanAction.plan_id == plan_id)
    if statuses:
        q = q.where(col(PlanAction.status).in_(statuses))
    return int(session.exec(q).one())


# Guards: pure reads.
def has_actions(ctx: Context) -> bool:
    return _count(ctx.session, ctx.row.id) > 0


def are_all_actions_done(ctx: Context) -> bool:
    return has_actions(ctx) and _count(ctx.session, ctx.row.id, OPEN) == 0


def has_open_actions(ctx: Context) -> bool:
    return _count(ctx.session, ctx.row.id, OPEN) > 0


# Actions: one per trigger; each may set the plan's own fields and returns the rest as data.
def _rows(ctx: Context) -> list[dict[str, Any]]:
    """The plan's rows a content change names (written by its use case): each an action of this plan."""
    rows = ctx.params.get("rows")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise InvalidInput(f"{ctx.trigger} names the plan's rows it changed: use the action plan's own commands")
    for r in rows:
        action = ctx.session.get(PlanAction, r.get("action")) if isinstance(r.get("action"), int) else None
        gone = ctx.trigger == "remove_action"
        if (action is None) != gone or (action is not None and action.plan_id != ctx.row.id):
            raise InvalidInput(f"{ctx.trigger}: action {r.get('action')!r} is not one of plan {ctx.row.id}'s actions")
    return rows


def change(ctx: Context) -> Effects:
    """A change of the plan's contents, already written by its use case: checked and audited."""
    _rows(ctx)
    return Effects()


def open_plan(ctx: Context) -> Effects:
    """A new plan in draft; carried forward into, it takes the previous year's open actions."""
    if "rows" in ctx.params:
        _take(ctx)
    return Effects()


def take_carried(ctx: Context) -> Effects:
    if "rows" not in ctx.params:
        raise InvalidInput("take_carried names the actions carried forward: use carry_forward on last year's plan")
    _take(ctx)
    return Effects()


def _take(ctx: Context) -> None:
    """Copy the open actions of last year's carried-forward plan (and their undone milestones)
    into this plan; each old action is marked carried, pointing at its copy."""
    rows, session, plan = ctx.params.get("rows"), ctx.session, ctx.row
    if not isinstance(rows, list) or not rows:
        raise InvalidInput("carrying forward needs the actions carried")
    olds: list[PlanAction] = []
    source: ActionPlan | None = None
    for r in rows:
        old = (
            session.get(PlanAction, r.get("action"))
            if isinstance(r, dict) and isinstance(r.get("action"), int)
            else None
        )
        src = session.get(ActionPlan, old.plan_id) if old is not None else None
        if (
            old is None
            or src is None
            or old.status != OPEN
            or src.state != P.CARRIED_FORWARD
            or src.service_id != plan.service_id
            or src.programme_year != plan.programme_year - 1
        ):
            raise InvalidInput(f"action {r!r} is not an open action of last year's plan carried forward")
        olds.append(old)
        source = src
    last = session.exec(select(func.max(PlanAction.position)).where(PlanAction.plan_id == plan.id)).one() or 0
    copies = []
    for n, old in enumerate(olds, start=1):
        new = PlanAction(
            plan_id=plan.id,
            recommendation_id=old.recommendation_id,
            text=old.text,
            owner_name=old.owner_name,
            owner_role=old.owner_role,
            interim=old.interim,
            position=last + n,
        )
        session.add(new)
        copies.append(new)
    session.flush()  # the copies' ids (the plan row itself is not changed before this)
    for old, new in zip(olds, copies):
        old.status, old.carried_to_id = CARRIED, new.id
        session.add(old)
        undone = session.exec(
            select(ActionMilestone).where(ActionMilestone.action_id == old.id, col(ActionMilestone.done_on).is_(None))
        )
        for m in list(undone):
            session.add(ActionMilestone(action_id=new.id, text=m.text, due_on=m.due_on))  # type: ignore[arg-type]
    if plan.carried_from_id is None and source is not None:
        plan.carried_from_id = source.id
    ctx.params = {**ctx.params, "carried": [{"from": o.id, "to": c.id} for o, c in zip(olds, copies)]}


def submit(ctx: Context) -> Effects:
    """Sent to the network, which agrees or returns it within the local-policy working days."""
    due = ctx.calendar.add_working_days(ctx.today, REVIEW_WORKING_DAYS)
    return Effects(
        deadlines=[NewDeadline("plan_review", due)],
        letters=[Letter("action_plan_submitted", to=("network-manager",), cc=("regional-lead",))],
    )


def agree(ctx: Context) -> Effects:
    """Agreed: the service's quarterly progress update falls due (local policy weeks), reminded before."""
    row: ActionPlan = ctx.row
    row.agreed_on = ctx.today
    return Effects(
        deadlines=[_update_due(ctx)],
        letters=[Letter("action_plan_agreed", to=TO_SERVICE, cc=("network-manager",))],
    )


def return_plan(ctx: Context) -> Effects:
    """Returned with the network's comments (the note) for the service to revise."""
    ctx.row.comments = ctx.note
    return Effects(
        letters=[
            Letter("action_plan_returned", to=TO_SERVICE, cc=("network-manager",), context=(("comments", ctx.note),))
        ]
    )


def record_update(ctx: Context) -> Effects:
    """The service's progress update closes this quarter's deadline and opens the next."""
    return Effects(deadlines=[_update_due(ctx)])


def _update_due(ctx: Context) -> NewDeadline:
    due = ctx.calendar.add_weeks(ctx.today, ctx.policy.plan_update_weeks)  # the one calendar, as risk reviews
    remind = ctx.calendar.subtract_working_days(due, ctx.policy.reminder_working_days)
    return NewDeadline("plan_update", due, remind if remind > ctx.today else None)


def complete(ctx: Context) -> Effects:
    return Effects(letters=[Letter("action_plan_completed", to=("network-manager",), cc=TO_SERVICE)])


def carry_forward(ctx: Context) -> Effects:
    """The open actions move into next year's plan: the service's plan for that year still in
    draft or returned (the first), else a new one opened now, by the same person."""
    row: ActionPlan = ctx.row
    open_ids = ctx.session.exec(
        select(PlanAction.id)
        .where(PlanAction.plan_id == row.id, PlanAction.status == OPEN)
        .order_by(col(PlanAction.position), col(PlanAction.id))
    ).all()
    params = {"rows": [{"action": i} for i in open_ids]}
    target = ctx.session.exec(
        select(ActionPlan)
        .where(
            ActionPlan.service_id == row.service_id,
            ActionPlan.programme_year == row.programme_year + 1,
            col(ActionPlan.state).in_([s.value for s in EDITABLE]),
        )
        .order_by(col(ActionPlan.id))
    ).first()
    if target is not None:
        assert target.id is not None
        return Effects(follow_on=[FollowOn("action_plan", "take_carried", item_id=target.id, params=params)])
    year = row.programme_year + 1
    new = ActionPlan(
        service_id=row.service_id,
        title=f"Action plan {year_label(year)} (carried forward from Plan-{row.id})",
        programme_year=year,
        carried_from_id=row.id,
        state=P.NEW.value,
    )
    return Effects(follow_on=[FollowOn("action_plan", "open", new=new, params=params)])


ACTIONS = {
    "open": open_plan,
    "add_action": change,
    "remove_action": change,
    "add_milestone": change,
    "complete_action": change,
    "mark_milestone_done": change,
    "take_carried": take_carried,
    "submit": submit,
    "agree": agree,
    "return_plan": return_plan,
    "record_update": record_update,
    "complete": complete,
    "carry_forward": carry_forward,
}


def year_label(year: int) -> str:
    """A programme year as people write it: 2026-27 (years run 1 April to 31 March)."""
    return f"{year}-{str(year + 1)[2:]}"


def letter_context(session: Session, row: ActionPlan) -> dict[str, Any]:
    return {
        "item": {
            "ref": f"Plan-{row.id}",
            "id": row.id,
            "title": row.title,
            "programme_year": year_label(row.programme_year),
            "comments": row.comments,
            "agreed_on": row.agreed_on,
            "open_actions": _count(session, row.id, OPEN) if row.id is not None else 0,
        },
        **service_context(session, row),
    }


SPEC = KindSpec(
    name="action_plan",
    model=ActionPlan,
    states=PlanState,
    initial=PlanState.NEW,
    transitions=TRANSITIONS,
    guards={
        "has_actions": has_actions,
        "are_all_actions_done": are_all_actions_done,
        "has_open_actions": has_open_actions,
    },
    actions=ACTIONS,
    deadline_rules=DEADLINE_RULES,
    terminal=frozenset({P.COMPLETED.value, P.CARRIED_FORWARD.value}),
    nation_of=nation_of,
    letter_context=letter_context,
    recipient_scope=recipient_scope,
    next_step={k.value: v for k, v in NEXT_STEP.items()},
    describe="Action plans answering a report's recommendations (000 s5.4, s6; 001)",
)
