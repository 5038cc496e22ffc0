"""What the action-plan pages show (issue 16 item 4): one plan with its actions, owners,
milestones (dates and working days left), evidence, the report's recommendations, deadlines and
what the person may do now; and a service's plans. Read-only; a plan or service the person may not
see is ``NotFound``, the same as a missing one. The use cases are in
``states/services/action_plans.py``.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, func, select

from models.portal import ActionMilestone, ActionPlan, PlanAction, Recommendation
from models.tables import AuditEvent, Service
from states import engine, permissions
from states.calendar import calendar_for
from states.clock import Clock, local_date
from states.errors import InvalidTrigger, PermissionDenied
from states.machines.action_plan import OPEN, year_label
from states.machines.spec import get_spec
from states.principal import Principal
from states.roles import CONTACT_ROLES
from states.services.action_plans import CONTENT_TRIGGERS, KIND, OWNER_ROLES, PLAN_TRIGGERS, may, plan_of, service_of
from states.services.recommendations import as_rows, recommendations_of
from states.uploads import uploads_of
from states.views import forms


def plan_page(session: Session, principal: Principal, plan_id: int, clock: Clock) -> dict[str, Any]:
    """One plan as its page shows it: the plan, its actions with owners, milestones (dates and
    working days left), evidence files, the report's recommendations, the deadlines, and what
    this person may do now."""
    plan = plan_of(session, principal, plan_id)
    assert plan.id is not None
    spec = get_spec(KIND)
    today = local_date(clock.now())
    cal = calendar_for(spec.nation_of(session, plan))
    svc = session.get(Service, plan.service_id)
    actions = list(
        session.exec(
            select(PlanAction)
            .where(PlanAction.plan_id == plan.id)
            .order_by(col(PlanAction.position), col(PlanAction.id))
        )
    )
    ids = [a.id for a in actions]
    by_action: dict[int, list[ActionMilestone]] = {}
    if ids:
        for m in session.exec(
            select(ActionMilestone)
            .where(col(ActionMilestone.action_id).in_(ids))
            .order_by(col(ActionMilestone.due_on), col(ActionMilestone.id))
        ):
            by_action.setdefault(m.action_id, []).append(m)
    recs = recommendations_of(session, plan.report_id) if plan.report_id is not None else []
    rec_text = {r.id: r.text for r in recs}
    for r in session.exec(  # an action carried from a plan of another report still names what it answers
        select(Recommendation).where(
            col(Recommendation.id).in_([a.recommendation_id for a in actions if a.recommendation_id not in rec_text])
        )
    ):
        rec_text[r.id] = r.text
    carried_to = {a.carried_to_id for a in actions if a.carried_to_id}
    to_plan = (
        dict(session.exec(select(PlanAction.id, PlanAction.plan_id).where(col(PlanAction.id).in_(carried_to))).all())
        if carried_to
        else {}
    )
    rows = []
    for a in actions:
        ms = by_action.get(a.id or 0, [])
        rows.append(
            {
                "id": a.id,
                "position": a.position,
                "text": a.text,
                "owner_name": a.owner_name,
                "owner_role": a.owner_role,
                "owner_role_name": CONTACT_ROLES.get(a.owner_role, a.owner_role),
                "interim": a.interim,
                "status": a.status,
                "done_on": a.done_on,
                "evidence": a.evidence,
                "carried_to_plan": to_plan.get(a.carried_to_id) if a.carried_to_id else None,
                "recommendation_id": a.recommendation_id,
                "recommendation": rec_text.get(a.recommendation_id) if a.recommendation_id else None,
                "milestones": [
                    {
                        "id": m.id,
                        "text": m.text,
                        "due_on": m.due_on,
                        "done_on": m.done_on,
                        "chased_on": m.chased_on,
                        "working_days_left": None if m.done_on else cal.working_days_between(today, m.due_on),
                        "overdue": m.done_on is None and m.due_on < today,
                    }
                    for m in ms
                ],
                "files": [
                    {"id": f.id, "filename": f.filename, "version": f.version, "size": f.size, "sha256": f.sha256}
                    for f in uploads_of(session, "plan_action", a.id or 0)
                ],
            }
        )
    answered = {a.recommendation_id for a in actions if a.recommendation_id}
    deadlines = []
    for d in engine.pending_deadlines(session, KIND, plan.id):
        rule = spec.deadline_rules.get(d.name)
        deadlines.append(
            {
                "name": d.name.replace("_", " "),
                "due_on": d.due_on,
                "status": d.status,
                "owner": CONTACT_ROLES.get(rule.owner, rule.owner) if rule else None,
                "step": rule.step if rule else None,
                "working_days_left": cal.working_days_between(today, d.due_on),
                "overdue": d.status != "paused" and d.due_on < today,
            }
        )
    steps = {f["trigger"]: f for f in forms.trigger_forms(session, principal, KIND, plan, clock)}
    may = {t: _can(session, principal, plan, t) for t in CONTENT_TRIGGERS}
    return {
        "plan": {
            "id": plan.id,
            "ref": f"Plan-{plan.id}",
            "title": plan.title,
            "state": plan.state,
            "version": plan.version,
            "programme_year": year_label(plan.programme_year),
            "year": plan.programme_year,
            "comments": plan.comments,
            "agreed_on": plan.agreed_on,
            "service_id": plan.service_id,
            "service": svc.name if svc else "",
            "report_id": plan.report_id,
            "risk_id": plan.risk_id,
            "carried_from_id": plan.carried_from_id,
            "next_step": spec.next_step.get(plan.state),
            "closed": plan.state in spec.terminal,
        },
        "actions": rows,
        "recommendations": [{**r, "answered": r["id"] in answered} for r in as_rows(recs)],
        "deadlines": deadlines,
        "steps": {t: steps[t] for t in PLAN_TRIGGERS if t in steps},
        "may": may,
        "owner_roles": [(r, CONTACT_ROLES.get(r, r)) for r in OWNER_ROLES],
        "today": today,
        "history": f"/items/{KIND}/{plan.id}",
        "last": _last(session, plan.id),
    }


def _last(session: Session, plan_id: int) -> dict[str, Any]:
    """The plan's last audited step (trigger, user_id): a page tells what the person just did only if it was theirs."""
    e = session.exec(
        select(AuditEvent)
        .where(AuditEvent.kind == KIND, AuditEvent.item_id == plan_id)
        .order_by(col(AuditEvent.id).desc())
    ).first()
    return {"trigger": e.trigger, "user_id": e.user_id} if e is not None else {}


def _can(session: Session, principal: Principal, plan: ActionPlan, trigger: str) -> bool:
    try:
        may(session, principal, plan, trigger, None)
    except (InvalidTrigger, PermissionDenied):
        return False
    return True


def plans_for_service(session: Session, principal: Principal, service_id: int, clock: Clock) -> dict[str, Any]:
    """A service's plans, newest year first, with their open actions and next deadline; and
    whether this person may open a new one."""
    svc = service_of(session, principal, service_id)
    today = local_date(clock.now())
    plans = list(
        session.exec(
            select(ActionPlan)
            .where(ActionPlan.service_id == svc.id)
            .order_by(col(ActionPlan.programme_year).desc(), col(ActionPlan.id).desc())
        )
    )
    opened: dict[int, int] = {}
    if plans:
        opened = dict(
            session.exec(
                select(PlanAction.plan_id, func.count())
                .where(col(PlanAction.plan_id).in_([p.id for p in plans]), PlanAction.status == OPEN)
                .group_by(col(PlanAction.plan_id))
            ).all()
        )
    spec = get_spec(KIND)
    roles = permissions.roles_for(spec, "open", spec.rows_for("open", "new"), permissions.rules(session))
    where = {"service_id": svc.id, "organisation_id": svc.organisation_id, "network_id": svc.network_id}
    return {
        "service": {"id": svc.id, "name": svc.name},
        "may_create": any(principal.holds(r, where) for r in roles),
        "this_year": today.year if today.month >= 4 else today.year - 1,
        "plans": [
            {
                "id": p.id,
                "ref": f"Plan-{p.id}",
                "title": p.title,
                "programme_year": year_label(p.programme_year),
                "state": p.state,
                "open_actions": opened.get(p.id or 0, 0),
                "deadlines": [
                    {"name": d.name.replace("_", " "), "due_on": d.due_on}
                    for d in engine.pending_deadlines(session, KIND, p.id or 0)
                ],
            }
            for p in plans
        ],
    }
