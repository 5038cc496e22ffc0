"""Programme phases (seeds 000 s5, 001): each phase of a network's programme year.

``pending`` until its quarter begins, when the sweep opens it (``open``): a documents
phase requests each Trust's submissions, an advance-notification phase writes to every
Trust. The network completes it (``complete``); if its due date passes first, the sweep marks
it ``overdue`` and chases the Network Manager and Regional Lead; an overdue phase can still
be completed. Dates come from the programme file (states/programmes/*.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select

from models.cycle import ProgrammePhase, Submission
from models.tables import Contact, Network, Organisation, Service
from states.errors import InvalidInput
from states.machines.spec import Context, DeadlineRule, Effects, FollowOn, KindSpec, Letter, NewDeadline
from states.programmes import QUARTERS, programme
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


# Actions: one per trigger; each may set the row's own fields and returns the rest as data.
def plan(ctx: Context) -> Effects:
    return Effects(deadlines=[NewDeadline("opening", ctx.calendar.add_days(ctx.row.opens_on, -1))])


def open_phase(ctx: Context) -> Effects:
    """The phase's due date; a letter to every Trust's chief executive and the documents
    requested of each Trust (follow-ons), as the programme file says."""
    row: ProgrammePhase = ctx.row
    remind = ctx.calendar.subtract_working_days(row.due_on, ctx.policy.reminder_working_days)
    out = Effects(deadlines=[NewDeadline("phase_due", row.due_on, remind if remind > ctx.today else None)])
    definition = _definition(row)
    trusts = trusts_in(ctx.session, row.network_id)
    if definition.notify:
        ceos = [
            c
            for org in trusts
            for c in ctx.session.exec(
                select(Contact).where(Contact.role == "chief-executive", Contact.organisation_id == org.id)
            )
        ]
        if ceos:
            out.letters.append(
                Letter(definition.notify, to=(), cc=NETWORK, people=tuple((c.name, c.email) for c in ceos))
            )
    for org in trusts if definition.requests else []:
        assert org.id is not None
        for doc in definition.requests:
            if _requested(ctx.session, row, org.id, doc):
                continue
            sub = Submission(
                network_id=row.network_id,
                organisation_id=org.id,
                programme_year=row.programme_year,
                doc_type=doc,
                due_on=row.due_on,
                phase_id=row.id,
                state="new",
            )
            out.follow_on.append(FollowOn("submission", "request", new=sub, note=f"requested by phase {row.title}"))
    return out


def _requested(session: Session, row: ProgrammePhase, organisation_id: int, doc: str) -> bool:
    return (
        session.exec(
            select(Submission.id).where(
                Submission.network_id == row.network_id,
                Submission.organisation_id == organisation_id,
                Submission.programme_year == row.programme_year,
                Submission.doc_type == doc,
            )
        ).first()
        is not None
    )


def complete(ctx: Context) -> Effects:
    return Effects()


def mark_overdue(ctx: Context) -> Effects:
    return Effects(letters=[Letter("phase_overdue", to=NETWORK, category="chase")])


def check_quarter_dates(params: Mapping[str, Any]) -> tuple[str, date, date]:
    """The quarter and dates ``set_quarter`` is given, or refuse with the reason."""
    q = str(params.get("quarter") or "")
    if q not in QUARTERS:
        raise InvalidInput(f"set_quarter: quarter {q!r}: use one of {', '.join(QUARTERS)}")
    try:
        opens_on = date.fromisoformat(str(params.get("opens_on")))
        due_on = date.fromisoformat(str(params.get("due_on")))
    except ValueError:
        raise InvalidInput(
            "set_quarter needs opens_on and due_on (YYYY-MM-DD): use peerwatch cycle set-quarter"
        ) from None
    if due_on < opens_on:
        raise InvalidInput(f"set_quarter: due_on {due_on} is before opens_on {opens_on}")
    return q, opens_on, due_on


def set_quarter(ctx: Context) -> Effects:
    """A pending phase's quarter and dates as the network set them (states/services/cycle_quarters.py);
    the opening deadline is replaced (the engine closes the old one)."""
    row: ProgrammePhase = ctx.row
    row.quarter, row.opens_on, row.due_on = check_quarter_dates(ctx.params)
    return Effects(deadlines=[NewDeadline("opening", ctx.calendar.add_days(row.opens_on, -1))])


ACTIONS = {
    "plan": plan,
    "open": open_phase,
    "complete": complete,
    "mark_overdue": mark_overdue,
    "set_quarter": set_quarter,
}


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
    actions=ACTIONS,
    deadline_rules=DEADLINE_RULES,
    terminal=frozenset({P.COMPLETE.value}),
    nation_of=lambda session, row: "ENG",
    letter_context=letter_context,
    recipient_scope=lambda session, row: {"service_id": None, "organisation_id": None, "network_id": row.network_id},
    next_step={k.value: v for k, v in NEXT_STEP.items()},
    describe="Programme phases of a network's annual or biennial cycle (000 s5, 001)",
)
