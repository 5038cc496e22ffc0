"""Action plans (issue 16 item 4; ``states/machines/action_plan.py`` for the machine): the
service builds its plan, the network agrees it or returns it, the service reports progress,
completes actions with evidence and carries the open ones into next year's plan.

Every use case takes the caller's session (the caller commits; on any error it rolls back, so a
refusal changes nothing). A plan another Trust's person cannot see is ``NotFound``, the same as a
missing one. A change of the plan's contents (an action, a milestone, an action completed) is
checked first (the plan visible, in a state that takes it, the person's role in its scope, the
version they read), then written, then fired as the plan's internal transition of the same name
with the rows it wrote (``rows``): one version bump, one audit event with the user, one
transaction. Transitions of the plan itself (submit, agree, return, update, complete, carry
forward) go through ``act``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from sqlmodel import Session, col, func, select

from models.portal import ActionMilestone, ActionPlan, PlanAction, Recommendation
from models.tables import Report, Risk, Service
from models.types import is_row_id
from states import engine, permissions
from states.clock import Clock, local_date
from states.engine.write import Outcome
from states.errors import InvalidInput, InvalidTrigger, NotFound, StaleVersion
from states.machines.action_plan import CARRIED, DONE, OPEN, year_label
from states.machines.spec import get_spec
from states.principal import INSTALLATION, Principal
from states.roles import TRUST_ROLES
from states.text import check_text, clean_paragraphs
from states.uploads import store_upload
from states.views.work import get_visible

KIND = "action_plan"
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
MAX_TEXT = 4000
MAX_NAME = 200
MAX_ACTIONS = 200
MAX_MILESTONES = 20
MAX_FILES = 10
PLAN_TRIGGERS = ("submit", "agree", "return_plan", "record_update", "complete", "carry_forward")
CONTENT_TRIGGERS = ("add_action", "remove_action", "add_milestone", "complete_action", "mark_milestone_done")
OWNER_ROLES = TRUST_ROLES  # an action's owner: one of the Trust's contact roles (the chase writes to it)


# ------------------------------------------------------------------ checks


def service_of(session: Session, principal: Principal, service_id: int) -> Service:
    """The service, if one of the principal's grants reaches it; else NotFound (as a missing one)."""
    svc = session.get(Service, service_id) if is_row_id(service_id) else None
    where = (
        None
        if svc is None
        else {"service_id": svc.id, "organisation_id": svc.organisation_id, "network_id": svc.network_id}
    )
    if svc is None or not any(g.scope == INSTALLATION or g.covers(where) for g in principal.grants):
        raise NotFound(f"service {service_id} not found")
    return svc


def plan_of(session: Session, principal: Principal, plan_id: int) -> ActionPlan:
    return get_visible(session, principal, KIND, plan_id)  # type: ignore[return-value]


def may(session: Session, principal: Principal, plan: ActionPlan, trigger: str, version: int | None) -> str:
    """Refuse before anything is written: the plan's state must take ``trigger``, the person must
    hold a role it allows in the plan's scope, and the plan must be at the version they read.
    (The engine checks all three again when it fires.)"""
    spec = get_spec(KIND)
    if version is not None and plan.version != version:
        raise StaleVersion(
            f"plan {plan.id} is at version {plan.version}, not {version}: it changed since you read it; "
            "show it again and retry"
        )
    rows = spec.rows_for(trigger, plan.state)
    if not rows:
        raise InvalidTrigger(
            f"plan {plan.id} is {plan.state.replace('_', ' ')}: it cannot take {trigger.replace('_', ' ')} now"
        )
    roles = permissions.roles_for(spec, trigger, rows, permissions.rules(session))
    return principal.choose(
        roles, spec.recipient_scope(session, plan), f"{trigger.replace('_', ' ')} on plan {plan.id}"
    )


def _fire(
    session: Session,
    principal: Principal,
    plan: ActionPlan,
    trigger: str,
    *,
    version: int | None,
    clock: Clock,
    rows: list[dict[str, Any]] | None = None,
    note: str | None = None,
) -> Outcome:
    assert plan.id is not None
    return engine.fire(
        session,
        KIND,
        plan.id,
        trigger,
        principal=principal,
        clock=clock,
        note=note,
        expected_version=version,
        params={"rows": rows} if rows else None,
    )


def _text(value: Any, what: str, limit: int = MAX_TEXT, *, one_line: bool = False) -> str:
    """Text as entered, trimmed: needed, bounded, and printable (a name or title one line; a
    paragraph may hold line breaks and tabs, no other control character)."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise InvalidInput(f"{what} is needed")
    if len(text) > limit:
        raise InvalidInput(f"{what} is at most {limit} characters (this is {len(text)})")
    if one_line:
        return str(check_text(text, what))
    found = _CONTROL.search(text)
    if found:
        raise InvalidInput(f"{what} contains the control character U+{ord(found.group()):04X}: nothing was changed")
    return text


def _due(value: Any, today: date, what: str) -> date:
    if not isinstance(value, date):
        raise InvalidInput(f"{what}: give a date (YYYY-MM-DD)")
    if value <= today:
        raise InvalidInput(f"{what} {value.isoformat()} is not after today ({today.isoformat()})")
    if value.year > 2100:
        raise InvalidInput(f"{what} {value.isoformat()} is after 2100-12-31")
    return value


def _action(session: Session, principal: Principal, plan_id: int, action_id: int) -> tuple[ActionPlan, PlanAction]:
    plan = plan_of(session, principal, plan_id)
    action = session.get(PlanAction, action_id) if is_row_id(action_id) else None
    if action is None or action.plan_id != plan.id:
        raise NotFound(f"action {action_id} not found in plan {plan_id}")
    return plan, action


def _milestones(
    session: Session, action_id: int, items: Iterable[tuple[str, date]], today: date
) -> list[ActionMilestone]:
    out = []
    for n, item in enumerate(items, start=1):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise InvalidInput(f"milestone {n}: give its text and its date")
        text, due_on = item
        out.append(
            ActionMilestone(
                action_id=action_id,
                text=_text(text, f"milestone {n}'s text", 1000),
                due_on=_due(due_on, today, f"milestone {n}'s date"),
            )
        )
    return out


def _milestone_row(m: ActionMilestone) -> dict[str, Any]:
    return {"milestone": m.id, "text": m.text, "due_on": m.due_on.isoformat()}


# ------------------------------------------------------------------ creating a plan


def create_plan(
    session: Session,
    principal: Principal,
    service_id: int,
    programme_year: int,
    report_id: int | None = None,
    risk_id: int | None = None,
    *,
    title: str | None = None,
    clock: Clock,
) -> ActionPlan:
    """Open a plan in draft for the service's programme year (from a report or a risk, if given),
    by the service or the network. One open plan per service, year, report and risk."""
    svc = service_of(session, principal, service_id)
    if isinstance(programme_year, bool) or not isinstance(programme_year, int) or not 2000 <= programme_year <= 2099:
        raise InvalidInput(f"programme year {programme_year!r}: give the year it starts, 2000 to 2099")
    if report_id is not None:
        report = session.get(Report, report_id) if is_row_id(report_id) else None
        if report is None or report.service_id != svc.id:
            raise InvalidInput(f"report {report_id} is not a report of {svc.name}")
    if risk_id is not None:
        risk = session.get(Risk, risk_id) if is_row_id(risk_id) else None
        if risk is None or risk.service_id != svc.id:
            raise InvalidInput(f"risk {risk_id} is not a risk or concern of {svc.name}")
    spec = get_spec(KIND)
    twin = session.exec(
        select(ActionPlan).where(
            ActionPlan.service_id == svc.id,
            ActionPlan.programme_year == programme_year,
            ActionPlan.report_id == report_id,
            ActionPlan.risk_id == risk_id,
            col(ActionPlan.state).not_in(sorted(spec.terminal)),
        )
    ).first()
    if twin is not None:
        raise InvalidInput(
            f"{svc.name} already has plan Plan-{twin.id} for {year_label(programme_year)} "
            f"{'for this report' if report_id else 'for this risk' if risk_id else ''}: add to it".replace("  ", " ")
        )
    name = (title or "").strip() or (
        f"Action plan {year_label(programme_year)}"
        + (f", answering Report-{report_id}" if report_id else "")
        + (f", for risk {risk_id}" if risk_id else "")
    )
    row = ActionPlan(
        service_id=svc.id,  # type: ignore[arg-type]
        title=_text(name, "the plan's title", MAX_NAME, one_line=True),
        programme_year=programme_year,
        report_id=report_id,
        risk_id=risk_id,
        state="new",
    )
    out = engine.create(session, KIND, row, "open", principal=principal, clock=clock)
    return out.row  # type: ignore[return-value]


# ------------------------------------------------------------------ the plan's contents (draft or returned)


def add_action(
    session: Session,
    principal: Principal,
    plan_id: int,
    text: str,
    owner_name: str,
    owner_role: str = "service-lead",
    interim: bool = False,
    recommendation_id: int | None = None,
    milestones: Sequence[tuple[str, date]] = (),
    *,
    version: int | None = None,
    clock: Clock,
) -> PlanAction:
    """Add an action (with its named owner, interim or not, the recommendation it answers and its
    dated milestones) to a plan in draft or returned; audited, version-checked."""
    plan = plan_of(session, principal, plan_id)
    may(session, principal, plan, "add_action", version)
    today = local_date(clock.now())
    if owner_role not in OWNER_ROLES:
        raise InvalidInput(f"owner role {owner_role!r}: use one of {', '.join(OWNER_ROLES)}")
    if not isinstance(interim, bool):
        raise InvalidInput("interim is yes or no")
    if len(milestones) > MAX_MILESTONES:
        raise InvalidInput(f"at most {MAX_MILESTONES} milestones an action")
    if recommendation_id is not None:
        rec = session.get(Recommendation, recommendation_id) if is_row_id(recommendation_id) else None
        report = session.get(Report, rec.report_id) if rec is not None else None
        if (
            rec is None
            or report is None
            or report.service_id != plan.service_id
            or (plan.report_id is not None and rec.report_id != plan.report_id)
        ):
            raise InvalidInput(f"recommendation {recommendation_id} is not one this plan answers")
    count = session.exec(select(func.count()).select_from(PlanAction).where(PlanAction.plan_id == plan.id)).one()
    if count >= MAX_ACTIONS:
        raise InvalidInput(f"a plan has at most {MAX_ACTIONS} actions")
    last = session.exec(select(func.max(PlanAction.position)).where(PlanAction.plan_id == plan.id)).one() or 0
    action = PlanAction(
        plan_id=plan.id,  # type: ignore[arg-type]
        recommendation_id=recommendation_id,
        text=_text(text, "the action's text"),
        owner_name=_text(owner_name, "the action's owner (a named person)", MAX_NAME, one_line=True),
        owner_role=owner_role,
        interim=interim,
        position=last + 1,
    )
    session.add(action)
    session.flush()
    assert action.id is not None
    dated = _milestones(session, action.id, milestones, today)
    session.add_all(dated)
    session.flush()
    row = {
        "action": action.id,
        "text": action.text,
        "owner": action.owner_name,
        "owner_role": owner_role,
        "interim": interim,
        "recommendation": recommendation_id,
        "milestones": [_milestone_row(m) for m in dated],
    }
    _fire(session, principal, plan, "add_action", version=version, clock=clock, rows=[row])
    return action


def remove_action(
    session: Session, principal: Principal, plan_id: int, action_id: int, *, version: int | None = None, clock: Clock
) -> None:
    """Remove an action (and its milestones) from a plan in draft or returned; audited."""
    plan, action = _action(session, principal, plan_id, action_id)
    may(session, principal, plan, "remove_action", version)
    if action.status != OPEN:
        raise InvalidInput(f"action {action_id} is {action.status}: only an open action can be removed")
    row = {"action": action.id, "text": action.text, "owner": action.owner_name}
    for m in session.exec(select(ActionMilestone).where(ActionMilestone.action_id == action.id)).all():
        session.delete(m)
    session.flush()
    session.delete(action)
    session.flush()
    _fire(session, principal, plan, "remove_action", version=version, clock=clock, rows=[row])


def add_milestone(
    session: Session,
    principal: Principal,
    plan_id: int,
    action_id: int,
    text: str,
    due_on: date,
    *,
    version: int | None = None,
    clock: Clock,
) -> ActionMilestone:
    """Add a dated milestone to an action of a plan in draft or returned; audited."""
    plan, action = _action(session, principal, plan_id, action_id)
    may(session, principal, plan, "add_milestone", version)
    assert action.id is not None
    count = session.exec(
        select(func.count()).select_from(ActionMilestone).where(ActionMilestone.action_id == action.id)
    ).one()
    if count >= MAX_MILESTONES:
        raise InvalidInput(f"at most {MAX_MILESTONES} milestones an action")
    (m,) = _milestones(session, action.id, [(text, due_on)], local_date(clock.now()))
    session.add(m)
    session.flush()
    rows = [{"action": action.id, **_milestone_row(m)}]
    _fire(session, principal, plan, "add_milestone", version=version, clock=clock, rows=rows)
    return m


# ------------------------------------------------------------------ progress (agreed)


def complete_action(
    session: Session,
    principal: Principal,
    plan_id: int,
    action_id: int,
    evidence_text: str,
    files: Sequence[tuple[str, bytes]] = (),
    *,
    version: int | None = None,
    clock: Clock,
) -> PlanAction:
    """Record an action of an agreed plan as done today, with its evidence (a statement and any
    files, each checked by its content and stored with its SHA-256); audited."""
    plan, action = _action(session, principal, plan_id, action_id)
    may(session, principal, plan, "complete_action", version)
    if action.status != OPEN:
        raise InvalidInput(f"action {action_id} is already {action.status}")
    evidence = _text(evidence_text, "the evidence that the action is done")
    if len(files) > MAX_FILES:
        raise InvalidInput(f"at most {MAX_FILES} files of evidence at once")
    assert plan.id is not None and action.id is not None and principal.user_id is not None
    stored = []
    for filename, data in files:
        up = store_upload(
            session,
            item_kind=KIND,
            item_id=plan.id,
            owner_kind="plan_action",
            owner_id=action.id,
            filename=filename,
            data=data,
            user_id=principal.user_id,
            at=clock.now(),
        )
        stored.append({"file": up.filename, "version": up.version, "sha256": up.sha256, "size": up.size})
    action.status, action.done_on, action.evidence = DONE, local_date(clock.now()), evidence
    session.add(action)
    session.flush()
    rows = [{"action": action.id, "done_on": action.done_on.isoformat(), "evidence": evidence, "files": stored}]
    _fire(session, principal, plan, "complete_action", version=version, clock=clock, rows=rows)
    return action


def mark_milestone_done(
    session: Session, principal: Principal, plan_id: int, milestone_id: int, *, version: int | None = None, clock: Clock
) -> ActionMilestone:
    """Mark a milestone of an agreed plan done today; audited."""
    plan = plan_of(session, principal, plan_id)
    m = session.get(ActionMilestone, milestone_id) if is_row_id(milestone_id) else None
    action = session.get(PlanAction, m.action_id) if m is not None else None
    if m is None or action is None or action.plan_id != plan.id:
        raise NotFound(f"milestone {milestone_id} not found in plan {plan_id}")
    may(session, principal, plan, "mark_milestone_done", version)
    if m.done_on is not None:
        raise InvalidInput(f"milestone {milestone_id} was already done on {m.done_on.isoformat()}")
    if action.status == CARRIED:
        raise InvalidInput(f"milestone {milestone_id}'s action was carried into another plan")
    today = local_date(clock.now())
    m.done_on = today
    session.add(m)
    session.flush()
    rows = [{"action": action.id, "milestone": m.id, "done_on": today.isoformat(), "late": today > m.due_on}]
    _fire(session, principal, plan, "mark_milestone_done", version=version, clock=clock, rows=rows)
    return m


# ------------------------------------------------------------------ the plan's own steps


def act(
    session: Session,
    principal: Principal,
    plan_id: int,
    trigger: str,
    *,
    note: str | None = None,
    version: int | None = None,
    clock: Clock,
) -> ActionPlan:
    """Submit, agree, return (the note is the comments), record an update (the note), complete
    or carry forward a plan: one transition through the engine."""
    plan = plan_of(session, principal, plan_id)
    if trigger not in PLAN_TRIGGERS:
        raise InvalidInput(f"{trigger!r} is not a step of a plan: use one of {', '.join(PLAN_TRIGGERS)}")
    may(session, principal, plan, trigger, version)
    note = clean_paragraphs(note, "the note", MAX_TEXT) if note is not None and note.strip() else None
    _fire(session, principal, plan, trigger, version=version, clock=clock, note=note)
    return plan
