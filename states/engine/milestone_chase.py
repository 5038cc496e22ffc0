"""The sweep's pass over action-plan milestones (000 s6 step 5): each open milestone whose date
passed undone, while its risk is still open, is chased once. The Service Lead (the milestone's
``owner_role``) is written to, copied to the Chief Executive and the Network Manager, on the
first working day after the due date; the chase is an audited event (``record_change``), by the
system principal. A milestone the pass does not chase (done or chased since the scan, or its
letter failed for any reason) is an incident in the skipped list with its reason, never dropped.
Recording and marking milestones done are use cases: ``states/services/milestones.py``.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel import Session, col, select

from models.db import begin_write
from models.tables import Milestone, Risk
from states.calendar import calendar_for
from states.clock import Clock, local_date
from states.engine import letters as outbox
from states.engine import record_change
from states.engine.system import SYSTEM_PRINCIPAL
from states.errors import PeerwatchError
from states.machines.spec import Letter, get_spec

log = logging.getLogger("peerwatch.milestones")
BATCH = 500
TEMPLATE = "milestone_overdue"
# The database itself failing (gone, locked, a lost connection): the run stops and says so;
# anything else one item raises is that item's incident and the rest go on.
FATAL = (OperationalError, InterfaceError)


def failure(exc: Exception) -> str:
    """An item's failure as its incident's reason: a refusal as it reads, anything else named."""
    if isinstance(exc, PeerwatchError):
        return str(exc)
    return f"failed: {type(exc).__name__}: {exc}"


def letter(m: Milestone, reply_by: date) -> Letter:
    return Letter(
        TEMPLATE,
        to=(m.owner_role,),
        cc=("chief-executive", "network-manager"),
        category="chase",
        key=f"milestone{m.id}",
        context=(("milestone", {"id": m.id, "text": m.text, "due_on": m.due_on}), ("reply_by", reply_by)),
    )


def chase_overdue(
    db: Engine, clock: Clock, *, chase_working_days: int = 5
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The sweep's pass over milestones: each open one whose date has passed (and whose risk is
    still open) gets its overdue letter once, in batches; one that cannot be composed is
    skipped with its reason and the rest go on. Returns (actions, skipped)."""
    today = local_date(clock.now())
    now = clock.now()
    spec = get_spec("risk")
    actions: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    with Session(db) as s:
        ids = list(
            s.exec(
                select(Milestone.id)
                .join(Risk, col(Risk.id) == Milestone.risk_id)
                .where(
                    col(Milestone.done_on).is_(None),
                    col(Milestone.chased_on).is_(None),
                    col(Milestone.due_on) < today,
                    col(Risk.state).not_in(list(spec.terminal)),
                )
                .order_by(col(Milestone.due_on), col(Milestone.id))
            )
        )
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        with Session(db, expire_on_commit=False) as s:
            begin_write(s)
            rows = list(
                s.exec(
                    select(Milestone)
                    .where(
                        col(Milestone.id).in_(chunk),
                        col(Milestone.chased_on).is_(None),
                        col(Milestone.done_on).is_(None),
                    )
                    .order_by(col(Milestone.due_on), col(Milestone.id))
                )
            )
            gone_ids = sorted({i for i in chunk if i is not None} - {m.id for m in rows})
            for gone in s.exec(select(Milestone).where(col(Milestone.id).in_(gone_ids))) if gone_ids else ():
                what = f"done on {gone.done_on.isoformat()}" if gone.done_on else "chased"
                _skip(skipped, gone, f"milestone {gone.id} changed since the sweep read it: it is now {what}")
            for m in rows:
                try:
                    with s.begin_nested():
                        risk = s.get(Risk, m.risk_id)
                        cal = calendar_for(spec.nation_of(s, risk))
                        reply_by = cal.add_working_days(today, chase_working_days)
                        deadlines = outbox.open_deadlines(s, "risk", [m.risk_id]).get(m.risk_id, {})
                        messages = outbox.compose(
                            s,
                            spec,
                            risk,
                            [letter(m, reply_by)],
                            key=f"milestone{m.id}:overdue",
                            now=now,
                            today=today,
                            deadlines=deadlines,
                        )
                        outbox.write(s, messages)
                        m.chased_on = today
                        s.add(m)
                        s.flush()
                        assert m.id is not None
                        record_change(
                            s,
                            "milestone",
                            m.id,
                            "chase_milestone",
                            principal=SYSTEM_PRINCIPAL,
                            clock=clock,
                            from_state="open",
                            state="chased",
                            note=f"milestone due {m.due_on.isoformat()} passed",
                            data={"risk_id": m.risk_id, "reply_by": reply_by.isoformat(), "letters": len(messages)},
                        )
                except FATAL:
                    raise
                except Exception as exc:  # this milestone's incident; the rest of the batch goes on
                    _skip(skipped, m, failure(exc))
                    continue
                actions.append(
                    {
                        "kind": "risk",
                        "id": m.risk_id,
                        "deadline": f"milestone {m.id}",
                        "due_on": m.due_on.isoformat(),
                        "action": "milestone_chased",
                        "milestone": m.id,
                    }
                )
            s.commit()
    return actions, skipped


def _skip(skipped: list[dict[str, Any]], m: Milestone, reason: str) -> None:
    log.warning("skipped milestone %s (risk %s): %s", m.id, m.risk_id, reason)
    skipped.append(
        {"kind": "milestone", "id": m.id, "risk_id": m.risk_id, "deadline": "milestone", "step": "chase_milestone",
         "reason": reason}
    )  # fmt: skip
