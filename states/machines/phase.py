"""Programme phases (seeds 000 s5, 001): each phase of a network's programme year.

``pending`` until its quarter begins, when the sweep opens it (``open``): a documents
phase requests each Trust's submissions, an advance-notification phase writes to every
Trust. The network completes it (``complete``); if its due date passes first, the sweep marks
it ``overdue`` and chases the Network Manager and Regional Lead; an overdue phase can still
be completed. Dates come from the programme file (states/programmes/*.yaml).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select

from models.cycle import ProgrammePhase, Submission
from models.tables import Contact, Network, Organisation, Service
from states.machines.spec import Context, DeadlineRule, Effects, KindSpec, Letter, NewDeadline
from states.programmes import programme
from states.roles import NETWORK_LEADS, STAFF, SYSTEM


class PhaseState(StrEnum):
    NEW = "new"
    PENDING = "pending"
    OPEN = "open"
    OVERDUE = "overdue"
    COMPLETE = "complete"


P = PhaseState
STAFF_ROLES = sorted(STAFF)
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "plan", "source": P.NEW, "dest": P.PENDING, "roles": [SYSTEM, *STAFF_ROLES]},
    {"trigger": "open", "source": P.PENDING, "dest": P.OPEN, "roles": [SYSTEM, *STAFF_ROLES]},
    {"trigger": "complete", "source": [P.OPEN, P.OVERDUE], "dest": P.COMPLETE, "roles": STAFF_ROLES},
    {"trigger": "mark_overdue", "source": P.OPEN, "dest": P.OVERDUE, "roles": [SYSTEM, *sorted(NETWORK_LEADS)]},
    # a network moves a step of a local-policy programme to another quarter (states/services/cycle_quarters.py)
    {"trigger": "set_quarter", "source": P.PENDING, "dest": None, "roles": sorted({*NETWORK_LEADS, "operator"})},
]
NETWORK = ("network-manager", "regional-lead")
DEADLINE_RULES = {
    "opening": DeadlineRule(owner="network-office", step="the phase opens at the start of its quarter", on_due="open"),
    "phase_due": DeadlineRule(
        owner="network-manager",
        step="complete the phase's activities",
        reminder=Letter("phase_due", to=NETWORK, category="reminder"),
        on_due="mark_overdue",
    ),
}
NEXT_STEP = {
    P.PENDING: "Opens at the start of its quarter",
    P.OPEN: "Network: carry out the phase's activities and mark it complete",
    P.OVERDUE: "Network: complete the overdue phase",
}


def _definition(row: ProgrammePhase) -> Any:
    base = row.key.split(":")[0]
    return next(p for p in programme(row.programme).phases if p.key == base)


def trusts_in(session: Session, network_id: int) -> list[Organisation]:
    """Trusts running at least one service in the network."""
    ids = set(session.exec(select(Service.organisation_id).where(Service.network_id == network_id)).all())
    return list(session.exec(select(Organisation).where(col(Organisation.id).in_(ids)).order_by(Organisation.id)))  # type: ignore[arg-type]


def effects(ctx: Context) -> Effects:
    row: ProgrammePhase = ctx.row
    t, out = ctx.trigger, Effects()
    if t == "plan":
        out.deadlines.append(NewDeadline("opening", ctx.calendar.add_days(row.opens_on, -1)))
    elif t == "open":
        remind = ctx.calendar.subtract_working_days(row.due_on, ctx.policy.reminder_working_days)
        out.deadlines.append(NewDeadline("phase_due", row.due_on, remind if remind > ctx.today else None))
        definition = _definition(row)
        if definition.notify:
            ceos = [
                c
                for org in trusts_in(ctx.session, row.network_id)
                for c in ctx.session.exec(
                    select(Contact).where(Contact.role == "chief-executive", Contact.organisation_id == org.id)
                )
            ]
            if ceos:
                out.letters.append(
                    Letter(definition.notify, to=(), cc=NETWORK, people=tuple((c.name, c.email) for c in ceos))
                )
        if definition.requests:
            out.then.append(lambda: _request_documents(ctx, definition.requests))
    elif t == "mark_overdue":
        out.letters.append(Letter("phase_overdue", to=NETWORK, category="chase"))
    elif t == "set_quarter":
        from states.services.cycle_quarters import reschedule

        reschedule(ctx, out)
    return out


def _request_documents(ctx: Context, doc_types: tuple[str, ...]) -> None:
    from states import engine
    from states.clock import FixedClock

    row: ProgrammePhase = ctx.row
    for org in trusts_in(ctx.session, row.network_id):
        for doc in doc_types:
            exists = ctx.session.exec(
                select(Submission.id).where(
                    Submission.network_id == row.network_id,
                    Submission.organisation_id == org.id,
                    Submission.programme_year == row.programme_year,
                    Submission.doc_type == doc,
                )
            ).first()
            if exists:
                continue
            sub = Submission(
                network_id=row.network_id,
                organisation_id=org.id,
                programme_year=row.programme_year,  # type: ignore[arg-type]
                doc_type=doc,
                due_on=row.due_on,
                phase_id=row.id,
                state="new",
            )
            engine.create(
                ctx.session,
                "submission",
                sub,
                "request",
                actor=ctx.actor,
                role=ctx.role,
                clock=FixedClock(ctx.now),
                note=f"requested by phase {row.title}",
            )


def _network(session: Session, row: ProgrammePhase) -> Network:
    net = session.get(Network, row.network_id)
    assert net is not None
    return net


def letter_context(session: Session, row: ProgrammePhase) -> dict[str, Any]:
    net = _network(session, row)
    definition = _definition(row)
    return {
        "item": {
            "ref": f"Phase-{row.id}",
            "id": row.id,
            "title": row.title,
            "quarter": row.quarter,
            "programme_year": f"{row.programme_year}-{str(row.programme_year + 1)[2:]}",
            "cycle_year": row.cycle_year,
            "opens_on": row.opens_on,
            "due_on": row.due_on,
            "activities": list(definition.activities),
        },
        "service": {"name": net.name, "kind": "network programme"},
        "organisation": {"name": net.name},
        "network": {"name": net.name, "code": net.code},
    }


SPEC = KindSpec(
    name="phase",
    model=ProgrammePhase,
    states=PhaseState,
    initial=PhaseState.NEW,
    transitions=TRANSITIONS,
    guards={},
    effects=effects,
    deadline_rules=DEADLINE_RULES,
    terminal=frozenset({P.COMPLETE.value}),
    nation_of=lambda session, row: "ENG",
    letter_context=letter_context,
    recipient_scope=lambda session, row: {"service_id": None, "organisation_id": None, "network_id": row.network_id},
    next_step={k.value: v for k, v in NEXT_STEP.items()},
    describe="Programme phases of a network's annual or biennial cycle (000 s5, 001)",
)
