"""The sweep's pass over the milestones of agreed action plans (000 s6 step 5; issue 16): each
undone milestone of an open action of an agreed plan whose date passed is chased once, on the
first sweep after it: a letter to the action's owner role, copied to the Network Manager; the
chase is an audited event (``record_change``, kind ``action_milestone``) by the system principal.
A milestone the pass does not chase (done or chased since the scan, or its letter failed) is an
incident in the skipped list with its reason, never dropped. The use cases that record and mark
milestones are in ``states/services/action_plans.py``.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from models.db import begin_write
from models.portal import ActionMilestone, ActionPlan, PlanAction
from states.calendar import calendar_for
from states.clock import Clock, local_date
from states.engine import letters as outbox
from states.engine import record_change
from states.engine.milestone_chase import FATAL, failure
from states.engine.system import SYSTEM_PRINCIPAL
from states.machines.spec import Letter, get_spec

log = logging.getLogger("peerwatch.plans")
BATCH = 500
TEMPLATE = "plan_milestone_overdue"
KIND = "action_plan"


def letter(m: ActionMilestone, action: PlanAction, reply_by: date) -> Letter:
    return Letter(
        TEMPLATE,
        to=(action.owner_role,),
        cc=("network-manager",),
        category="chase",
        key=f"actionmilestone{m.id}",
        context=(
            ("milestone", {"id": m.id, "text": m.text, "due_on": m.due_on}),
            ("action", {"id": action.id, "text": action.text, "owner_name": action.owner_name}),
            ("reply_by", reply_by),
        ),
    )


def _due(today: date) -> Any:
    return (
        select(ActionMilestone.id)
        .join(PlanAction, col(PlanAction.id) == ActionMilestone.action_id)
        .join(ActionPlan, col(ActionPlan.id) == PlanAction.plan_id)
        .where(
            col(ActionMilestone.done_on).is_(None),
            col(ActionMilestone.chased_on).is_(None),
            col(ActionMilestone.due_on) < today,
            PlanAction.status == "open",
            ActionPlan.state == "agreed",
        )
        .order_by(col(ActionMilestone.due_on), col(ActionMilestone.id))
    )


def chase_overdue(
    db: Engine, clock: Clock, *, chase_working_days: int = 5
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Chase each overdue milestone of an agreed plan once, in batches. Returns (actions, skipped)."""
    today, now = local_date(clock.now()), clock.now()
    spec = get_spec(KIND)
    actions: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    with Session(db) as s:
        ids = [i for i in s.exec(_due(today)) if i is not None]
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        with Session(db, expire_on_commit=False) as s:
            begin_write(s)
            still = set(s.exec(_due(today).where(col(ActionMilestone.id).in_(chunk))))
            for gone in sorted(set(chunk) - still):
                _skip(
                    skipped,
                    gone,
                    f"action milestone {gone} changed since the sweep read it (done, chased or its plan moved on)",
                )
            for m in s.exec(select(ActionMilestone).where(col(ActionMilestone.id).in_(sorted(still)))).all():
                try:
                    with s.begin_nested():
                        action = s.get(PlanAction, m.action_id)
                        plan = s.get(ActionPlan, action.plan_id) if action is not None else None
                        assert action is not None and plan is not None and plan.id is not None and m.id is not None
                        reply_by = calendar_for(spec.nation_of(s, plan)).add_working_days(today, chase_working_days)
                        messages = outbox.compose(
                            s,
                            spec,
                            plan,
                            [letter(m, action, reply_by)],
                            key=f"actionmilestone{m.id}:overdue",
                            now=now,
                            today=today,
                            deadlines=outbox.open_deadlines(s, KIND, [plan.id]).get(plan.id, {}),
                        )
                        outbox.write(s, messages)
                        m.chased_on = today
                        s.add(m)
                        s.flush()
                        record_change(
                            s,
                            "action_milestone",
                            m.id,
                            "chase_milestone",
                            principal=SYSTEM_PRINCIPAL,
                            clock=clock,
                            from_state="open",
                            state="chased",
                            note=f"milestone due {m.due_on.isoformat()} passed",
                            data={
                                "plan_id": plan.id,
                                "action_id": action.id,
                                "reply_by": reply_by.isoformat(),
                                "letters": len(messages),
                            },
                        )
                except FATAL:
                    raise
                except Exception as exc:  # this milestone's incident; the rest of the batch goes on
                    _skip(skipped, m.id, failure(exc))
                    continue
                actions.append(
                    {
                        "kind": KIND,
                        "id": plan.id,
                        "deadline": f"action milestone {m.id}",
                        "due_on": m.due_on.isoformat(),
                        "action": "plan_milestone_chased",
                        "milestone": m.id,
                    }
                )
            s.commit()
    return actions, skipped


def _skip(skipped: list[dict[str, Any]], milestone_id: int | None, reason: str) -> None:
    log.warning("skipped action milestone %s: %s", milestone_id, reason)
    skipped.append(
        {"kind": "action_milestone", "id": milestone_id, "deadline": "milestone", "step": "chase_milestone",
         "reason": reason}
    )  # fmt: skip
