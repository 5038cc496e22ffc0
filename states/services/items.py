"""One item as the operator reads it: its fields, pending deadlines, next step and triggers, and the
lists and audit trails behind ``peerwatch <kind> show|list|history``. Read-only."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from models import OUTSTANDING, AuditEvent, Deadline, Milestone, OutboxMessage
from states import engine
from states.errors import InvalidInput
from states.machines.spec import get_spec


def deadline_json(session: Session, kind: str, item_id: int) -> list[dict[str, Any]]:
    """The item's pending deadlines with who owns each step and what happens when it falls due."""
    spec = get_spec(kind)
    out = []
    for d in engine.pending_deadlines(session, kind, item_id):
        rule = spec.deadline_rules.get(d.name)
        out.append(
            {
                "name": d.name,
                "due_on": d.due_on.isoformat(),
                "status": d.status,
                "remind_on": d.remind_on.isoformat() if d.remind_on else None,
                "owner": rule.owner if rule else None,
                "step": rule.step if rule else None,
                "then": rule.on_due if rule else None,
            }
        )
    return out


def item_json(session: Session, kind: str, row: Any) -> dict[str, Any]:
    """The item's fields with its deadlines, next step, triggers now, and what its kind adds."""
    spec = get_spec(kind)
    data: dict[str, Any] = row.model_dump()
    data.update(
        {
            "kind": kind,
            "deadlines": deadline_json(session, kind, row.id),
            "next_step": spec.next_step.get(row.state),
            "triggers": spec.allowed_from(row.state),
        }
    )
    # The kinds' own modules load only for their kind, as the machine registry loads them.
    if kind == "visit":
        from states.machines.visit import panel_view  # lazy: start-up time (machine registry)

        data["panel"], data["warnings"] = panel_view(session, row)
    if kind == "report":
        from states.machines.report import document  # lazy: start-up time (machine registry)

        doc = document(session, row)
        data["inaccuracies"], data["achievement"] = doc["inaccuracies"], doc["achievement"]
    if kind in ("submission", "selfassessment", "report"):  # received late or on time, as recorded at receipt
        from states.machines import lateness  # lazy: start-up time (machine registry)

        data["lateness"] = lateness.for_item(session, kind, row.id)
        if data["lateness"]:  # the latest receipt, flat, for the table
            last = data["lateness"][-1]
            data.update(
                {"late": last["late"], "days_late": last["days_late"], "working_days_late": last["working_days_late"]}
            )
    if kind == "risk":
        from states.machines import risk  # lazy: start-up time (machine registry)

        data["score"] = risk.score(row)
        data["milestones"] = [
            m.model_dump()
            for m in session.exec(select(Milestone).where(Milestone.risk_id == row.id).order_by(col(Milestone.due_on)))
        ]
    return data


def show(session: Session, kind: str, item_id: int) -> dict[str, Any]:
    """``item_json`` of one item, loaded by id (NotFound if there is none)."""
    _, row = engine.load(session, kind, item_id)
    return item_json(session, kind, row)


def check_state(kind: str, state: str | None) -> None:
    """InvalidInput unless ``state`` (if given) is one of the kind's states, naming them."""
    names = [s.value for s in get_spec(kind).states]
    if state and state not in names:
        raise InvalidInput(f"unknown state {state!r} for {kind}: {', '.join(names)}")


def item_rows(
    session: Session, kind: str, state: str | None = None, due_before: date | None = None
) -> list[dict[str, Any]]:
    """Items of a kind (optionally in one state, or with a pending deadline before a date), each with
    its next deadline."""
    spec = get_spec(kind)
    check_state(kind, state)
    q = select(spec.model).order_by(col(spec.model.id))
    if state:
        q = q.where(spec.model.state == state)
    items: list[Any] = list(session.exec(q))
    dq = (
        select(Deadline)
        .where(Deadline.kind == kind, col(Deadline.status).in_(OUTSTANDING))
        .order_by(col(Deadline.due_on))
    )
    nxt: dict[int, Deadline] = {}
    for d in session.exec(dq):
        nxt.setdefault(d.item_id, d)
    if due_before:
        items = [i for i in items if i.id in nxt and nxt[i.id].due_on < due_before]
    out = []
    for i in items:
        first = nxt.get(i.id)
        row: dict[str, Any] = {
            "id": i.id,
            "state": i.state,
            "version": i.version,
            "next_deadline": first.name if first else None,
            "due_on": first.due_on.isoformat() if first else None,
        }
        if kind == "risk":
            row.update({"level": i.level, "title": i.title, "service_id": i.service_id})
        out.append(row)
    return out


def history(session: Session, kind: str, item_id: int) -> tuple[list[AuditEvent], list[OutboxMessage]]:
    """The item's audit trail, oldest first, and the letters queued about it."""
    events = engine.history(session, kind, item_id)
    letters = list(
        session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.kind == kind, OutboxMessage.item_id == item_id)
            .order_by(col(OutboxMessage.id))
        )
    )
    return events, letters


DRAFT_REPORT_STATES = ("drafting", "accuracy_check", "inaccuracies_received")


def report_document(session: Session, report_id: int) -> tuple[dict[str, Any], bool]:
    """A report's document as rendered from the stored data, and whether it is still a draft."""
    from states.machines.report import document  # lazy: start-up time (machine registry)

    _, row = engine.load(session, "report", report_id)
    return document(session, row), row.state in DRAFT_REPORT_STATES  # type: ignore[arg-type]


def forum_decisions(session: Session, item_id: int) -> list[dict[str, Any]]:
    """What each forum decided about a perinatal concern, and who recorded it."""
    _, row = engine.load(session, "perinatal", item_id)
    return list(row.forum_decisions)  # type: ignore[attr-defined]
