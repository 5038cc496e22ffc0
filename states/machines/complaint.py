"""Complaints about the process or conduct of a review (seed 000 s8.2).

A complaint is ``received`` and routed by category: arrangements such as dates and timings
go to the network office; the conduct of the review or of a panel member, the drafting of
the report, and an unresolved factual accuracy disagreement go to the Network Manager. It is
``acknowledged`` to the complainant, ``investigated`` and ``resolved`` with the outcome sent.
A complaint about a person, as distinct from the conduct of their role, is not acceptable:
it can be closed as ``not_acceptable`` with the reason sent. The seeds set no response times:
acknowledgement within 5 and resolution within 20 working days are local policy.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlmodel import Session

from models.tables import Complaint, Network, Organisation, Service
from states.errors import InvalidInput, NotFound
from states.machines.spec import Context, DeadlineRule, Effects, KindSpec, Letter, NewDeadline
from states.roles import NETWORK_LEADS, STAFF

ROUTES = {  # category -> who owns it (000 s8.2)
    "arrangements": "network-office",
    "conduct": "network-manager",
    "report_drafting": "network-manager",
    "factual_accuracy": "network-manager",
}


class ComplaintState(StrEnum):
    NEW = "new"
    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    INVESTIGATED = "investigated"
    RESOLVED = "resolved"
    NOT_ACCEPTABLE = "not_acceptable"


C = ComplaintState
STAFF_ROLES = sorted(STAFF)
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "receive", "source": C.NEW, "dest": C.RECEIVED, "roles": STAFF_ROLES},
    {"trigger": "classify", "source": [C.RECEIVED, C.ACKNOWLEDGED], "dest": None, "roles": STAFF_ROLES},
    {"trigger": "acknowledge", "source": C.RECEIVED, "dest": C.ACKNOWLEDGED, "roles": STAFF_ROLES},
    {"trigger": "investigate", "source": C.ACKNOWLEDGED, "dest": C.INVESTIGATED, "roles": STAFF_ROLES},
    {"trigger": "resolve", "source": C.INVESTIGATED, "dest": C.RESOLVED, "roles": STAFF_ROLES, "note_required": True},
    {
        "trigger": "close_not_acceptable",
        "source": [C.RECEIVED, C.ACKNOWLEDGED],
        "dest": C.NOT_ACCEPTABLE,
        "roles": sorted(NETWORK_LEADS),
        "note_required": True,
        "conditions": ["is_about_a_person"],
    },
]


def _owner_letter(template: str, category: str) -> Any:
    def build(session: Session, row: Complaint) -> Letter:
        return Letter(
            template,
            to=(row.owner_role,),
            cc=("network-manager",) if row.owner_role != "network-manager" else (),
            category=category,
        )

    return build


DEADLINE_RULES = {
    "acknowledgement": DeadlineRule(
        owner="network-office",
        step="acknowledge the complaint to the complainant",
        overdue=_owner_letter("complaint_overdue", "chase"),
    ),
    "resolution": DeadlineRule(
        owner="network-manager",
        step="investigate and send the outcome",
        reminder=_owner_letter("complaint_due", "reminder"),
        overdue=_owner_letter("complaint_overdue", "chase"),
        runs_through=frozenset({C.INVESTIGATED.value}),
    ),
}
NEXT_STEP = {
    C.RECEIVED: "Owner: acknowledge the complaint (or close it as not acceptable if it is about a person)",
    C.ACKNOWLEDGED: "Owner: investigate",
    C.INVESTIGATED: "Owner: resolve and send the outcome",
}


def is_about_a_person(ctx: Context) -> bool:
    return bool(ctx.row.about_person)


def _complainant(row: Complaint) -> tuple[tuple[str, str], ...]:
    return ((row.complainant_name, row.complainant_email),)


# Validators: refuse with a reason.
def _check_received(row: Complaint) -> None:
    if row.category not in ROUTES:
        raise InvalidInput(f"category {row.category!r}: use one of {', '.join(ROUTES)}")
    if "@" not in row.complainant_email:
        raise InvalidInput(f"complainant email {row.complainant_email!r} has no @")


# Actions: one per trigger; each may set the complaint's own fields and returns the rest as data.
def receive(ctx: Context) -> Effects:
    """Routed to its owner by category; acknowledgement due in the policy's working days."""
    row: Complaint = ctx.row
    _check_received(row)
    row.owner_role = ROUTES[row.category]
    due = ctx.calendar.add_working_days(row.received_on, ctx.policy.complaint_acknowledge_working_days)
    return Effects(deadlines=[NewDeadline("acknowledgement", due)])


def classify(ctx: Context) -> Effects:
    if "about_person" not in ctx.params:
        raise InvalidInput("classify needs about_person=yes|no")
    ctx.row.about_person = str(ctx.params["about_person"]).lower() in ("1", "true", "yes", "y")
    return Effects()


def acknowledge(ctx: Context) -> Effects:
    """The complainant is acknowledged; the resolution is due in the policy's working days, reminded before."""
    row: Complaint = ctx.row
    due = ctx.calendar.add_working_days(ctx.today, ctx.policy.complaint_resolution_working_days)
    return Effects(
        deadlines=[
            NewDeadline("resolution", due, ctx.calendar.subtract_working_days(due, ctx.policy.reminder_working_days))
        ],
        letters=[Letter("complaint_acknowledgement", to=(), cc=(row.owner_role,), people=_complainant(row))],
    )


def _outcome(ctx: Context, template: str) -> Effects:
    row: Complaint = ctx.row
    row.outcome = ctx.note
    return Effects(
        letters=[
            Letter(template, to=(), cc=(row.owner_role,), people=_complainant(row), context=(("reason", ctx.note),))
        ]
    )


def resolve(ctx: Context) -> Effects:
    return _outcome(ctx, "complaint_outcome")


def close_not_acceptable(ctx: Context) -> Effects:
    return _outcome(ctx, "complaint_not_acceptable")


ACTIONS = {
    "receive": receive,
    "classify": classify,
    "acknowledge": acknowledge,
    "resolve": resolve,
    "close_not_acceptable": close_not_acceptable,
}


def _where(session: Session, row: Complaint) -> tuple[Network, Service | None, Organisation | None]:
    net = session.get(Network, row.network_id)
    if net is None:
        raise NotFound(f"network {row.network_id} not found")
    svc = session.get(Service, row.service_id) if row.service_id else None
    org = session.get(Organisation, svc.organisation_id) if svc else None
    return net, svc, org


def nation_of(session: Session, row: Complaint) -> str:
    return _where(session, row)[2].nation if row.service_id else "ENG"  # type: ignore[union-attr]


def recipient_scope(session: Session, row: Complaint) -> dict[str, int | None]:
    net, svc, org = _where(session, row)
    return {"service_id": svc.id if svc else None, "organisation_id": org.id if org else None, "network_id": net.id}


def letter_context(session: Session, row: Complaint) -> dict[str, Any]:
    net, svc, org = _where(session, row)
    return {
        "item": {
            "ref": f"Complaint-{row.id}",
            "id": row.id,
            "title": f"Complaint: {row.category.replace('_', ' ')}",
            "category": row.category.replace("_", " "),
            "summary": row.summary,
            "received_on": row.received_on,
            "outcome": row.outcome,
            "complainant": row.complainant_name,
        },
        "service": {"name": svc.name if svc else "(network-wide)", "kind": svc.kind if svc else "network"},
        "organisation": {"name": org.name if org else net.name},
        "network": {"name": net.name, "code": net.code},
    }


SPEC = KindSpec(
    name="complaint",
    model=Complaint,
    states=ComplaintState,
    initial=ComplaintState.NEW,
    transitions=TRANSITIONS,
    guards={"is_about_a_person": is_about_a_person},
    actions=ACTIONS,
    deadline_rules=DEADLINE_RULES,
    terminal=frozenset({C.RESOLVED.value, C.NOT_ACCEPTABLE.value}),
    nation_of=nation_of,
    letter_context=letter_context,
    recipient_scope=recipient_scope,
    next_step={k.value: v for k, v in NEXT_STEP.items()},
    describe="Complaints about the process or conduct of a review (000 s8.2)",
)
