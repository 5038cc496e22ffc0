"""Peer review visits, their panels and the day itself (seed 000 s5.2-5.3, Appendix 3).

A visit is ``proposed`` (by weighting, or after a self-assessment is validated), then
``scheduled`` for a date, in person or virtual. The service is notified and offered a
preparation session (``service_notified``); the panel is built: each reviewer declares
conflicts of interest, nobody from the reviewed organisation or the service's shared
pathway may sit, reviewers from other networks may. When the preparation session is held
or declined, the panel confirmed, every declaration in and the evidence received, the visit
is ``prepared``; on the day it is ``held``; at high level feedback (``feedback_given``) the
immediate risks and serious concerns found are recorded and raised as risks, whose formal
notification is due 5 working days after the visit, and the report starts drafting
(due 8 weeks after the visit). Then ``closed``. A visit not yet held may be postponed to a
new date (back to ``scheduled``: the service is notified again) or cancelled, with a reason.
"""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select

from models.tables import Network, Organisation, PanelMember, Reviewer, Risk, Visit
from models.tables import Report as ReportRow
from models.types import is_row_id
from states.clock import parse_date
from states.errors import GuardRefused, InvalidInput, NotFound
from states.machines.spec import Context, DeadlineRule, Effects, FollowOn, KindSpec, Letter, NewDeadline
from states.roles import NETWORK_LEADS, STAFF
from states.scope import nation_of, recipient_scope, service_context, service_of

DISCIPLINES = ("clinician", "nurse", "ahp", "management", "commissioning", "service_user")
DISCIPLINE_NAMES = {
    "clinician": "Clinician",
    "nurse": "Nurse",
    "ahp": "AHP/HCS",
    "management": "Management",
    "commissioning": "Commissioning",
    "service_user": "Service user",
}
MODES = ("in_person", "virtual")


class VisitState(StrEnum):
    NEW = "new"
    PROPOSED = "proposed"
    SCHEDULED = "scheduled"
    SERVICE_NOTIFIED = "service_notified"
    PREPARED = "prepared"
    HELD = "held"
    FEEDBACK_GIVEN = "feedback_given"
    CLOSED = "closed"
    CANCELLED = "cancelled"


V = VisitState
STAFF_ROLES = sorted(STAFF)
LEADS = sorted(NETWORK_LEADS)
NOT_HELD = [V.PROPOSED, V.SCHEDULED, V.SERVICE_NOTIFIED, V.PREPARED]
PANEL_OPEN = [V.PROPOSED, V.SCHEDULED, V.SERVICE_NOTIFIED]

TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "propose", "source": V.NEW, "dest": V.PROPOSED, "roles": STAFF_ROLES},
    {"trigger": "schedule", "source": V.PROPOSED, "dest": V.SCHEDULED, "roles": STAFF_ROLES},
    {"trigger": "notify_service", "source": V.SCHEDULED, "dest": V.SERVICE_NOTIFIED, "roles": STAFF_ROLES},
    {"trigger": "add_panel_member", "source": PANEL_OPEN, "dest": None, "roles": STAFF_ROLES},
    {"trigger": "remove_panel_member", "source": PANEL_OPEN, "dest": None, "roles": STAFF_ROLES, "note_required": True},
    {"trigger": "record_declaration", "source": PANEL_OPEN, "dest": None, "roles": STAFF_ROLES},
    {"trigger": "record_preparation", "source": [V.SCHEDULED, V.SERVICE_NOTIFIED], "dest": None, "roles": STAFF_ROLES},
    {
        "trigger": "confirm_prepared",
        "source": V.SERVICE_NOTIFIED,
        "dest": V.PREPARED,
        "roles": STAFF_ROLES,
        "conditions": ["is_preparation_settled", "is_panel_confirmed", "has_conflicts_cleared", "is_evidence_received"],
    },
    {
        "trigger": "hold",
        "source": V.PREPARED,
        "dest": V.HELD,
        "roles": STAFF_ROLES,
        "conditions": ["is_visit_day_reached"],
    },
    {"trigger": "give_feedback", "source": V.HELD, "dest": V.FEEDBACK_GIVEN, "roles": LEADS},
    {"trigger": "close", "source": V.FEEDBACK_GIVEN, "dest": V.CLOSED, "roles": LEADS},
    {
        "trigger": "postpone",
        "source": [V.SCHEDULED, V.SERVICE_NOTIFIED, V.PREPARED],
        "dest": V.SCHEDULED,
        "roles": STAFF_ROLES,
        "note_required": True,
    },
    {"trigger": "cancel", "source": NOT_HELD, "dest": V.CANCELLED, "roles": LEADS, "note_required": True},
]

SERVICE = ("service-lead",)
NETWORK = ("network-manager", "regional-lead")


def panel(session: Session, visit_id: int) -> list[tuple[PanelMember, Reviewer]]:
    """A visit's panel members and their reviewers, in the order they were added."""
    rows = session.exec(
        select(PanelMember, Reviewer)
        .join(Reviewer)
        .where(PanelMember.visit_id == visit_id)
        .order_by(col(PanelMember.id))
    )
    return [(m, r) for m, r in rows]


def _undeclared_chase(session: Session, row: Visit) -> Letter | None:
    missing = [r for m, r in panel(session, row.id) if m.declared_on is None]  # type: ignore[arg-type]
    if not missing:
        return None
    return Letter(
        "declaration_chase",
        to=(),
        cc=("network-office",),
        category="chase",
        people=tuple((r.name, r.email) for r in missing),
    )


DEADLINE_RULES = {
    "declarations": DeadlineRule(
        owner="network-office",
        step="every panel member returns the conflict-of-interest declaration",
        reminder=_undeclared_chase,
        overdue=_undeclared_chase,
    ),
    "visit_day": DeadlineRule(
        owner="network-office",
        step="hold the visit and record it",
        overdue=Letter("visit_not_recorded", to=("network-office",), cc=NETWORK, category="chase"),
    ),
}

NEXT_STEP = {
    V.PROPOSED: "Network: agree a date and mode with the service (schedule)",
    V.SCHEDULED: "Network office: notify the service and offer a preparation session; build the panel",
    V.SERVICE_NOTIFIED: "Network office: preparation session held or declined, panel confirmed, declarations in, evidence received",
    V.PREPARED: "Panel: hold the visit on the day",
    V.HELD: "Network Manager / Regional Lead: record high level feedback and any IR/SC found",
    V.FEEDBACK_GIVEN: "Network office: draft the report (8 weeks); close the visit",
}


# Guards: pure predicates.
def is_preparation_settled(ctx: Context) -> bool:
    return ctx.row.prep_session in ("held", "declined")


def is_panel_confirmed(ctx: Context) -> bool:
    return bool(ctx.row.panel_confirmed)


def has_conflicts_cleared(ctx: Context) -> bool:
    members = panel(ctx.session, ctx.row.id)
    return bool(members) and all(m.declared_on is not None and not m.declared_conflicts for m, _ in members)


def is_evidence_received(ctx: Context) -> bool:
    return bool(ctx.row.evidence_received)


def is_visit_day_reached(ctx: Context) -> bool:
    return ctx.row.visit_date is not None and ctx.today >= ctx.row.visit_date


def conflict_reason(session: Session, visit: Visit, reviewer: Reviewer) -> str | None:
    """Why a reviewer may not sit on this visit's panel, or None (000 s5.2)."""
    svc, org, _ = service_of(session, visit.service_id)
    if reviewer.organisation_id is not None and reviewer.organisation_id == org.id:
        return f"{reviewer.name} works for {org.name}, the organisation under review"
    if svc.pathway and svc.pathway in (reviewer.pathways or []):
        return f"{reviewer.name} works in the {svc.name}'s shared pathway ({svc.pathway})"
    return None


def _reviewer(ctx: Context) -> Reviewer:
    try:
        rid = int(ctx.params["reviewer_id"])
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(f"{ctx.trigger} needs reviewer_id=N") from None
    reviewer = ctx.session.get(Reviewer, rid) if is_row_id(rid) else None
    if reviewer is None:
        raise NotFound(f"reviewer {rid} not found")
    return reviewer


def _member(ctx: Context, reviewer: Reviewer) -> PanelMember:
    m = ctx.session.exec(
        select(PanelMember).where(PanelMember.visit_id == ctx.row.id, PanelMember.reviewer_id == reviewer.id)
    ).first()
    if m is None:
        raise GuardRefused(f"{reviewer.name} is not on the panel of visit {ctx.row.id}")
    return m


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes", "y")


def _visit_date(ctx: Context) -> date:
    raw = ctx.params.get("date")
    if raw is None:
        raise InvalidInput(f"{ctx.trigger} needs date=YYYY-MM-DD")
    day = raw if isinstance(raw, date) else parse_date(str(raw), "visit date")
    if day < ctx.today:
        raise InvalidInput(f"visit date {day.isoformat()} is in the past (today is {ctx.today.isoformat()})")
    if not ctx.calendar.is_working_day(day):
        raise InvalidInput(f"visit date {day.isoformat()} is not a working day")
    return day


def _notification_deadlines(ctx: Context) -> list[NewDeadline]:
    row: Visit = ctx.row
    assert row.visit_date is not None
    due = ctx.calendar.subtract_working_days(row.visit_date, ctx.policy.declarations_working_days_before_visit)
    due = max(due, ctx.today)
    remind = ctx.calendar.subtract_working_days(due, ctx.policy.reminder_working_days)
    return [
        NewDeadline("declarations", due, remind if remind > ctx.today else None),
        NewDeadline("visit_day", row.visit_date),
    ]


# Actions: one per trigger; each may set the row's own fields and returns the rest as data.
def propose(ctx: Context) -> Effects:
    ctx.row.reason = ctx.params.get("reason") or ctx.note
    return Effects()


def schedule(ctx: Context) -> Effects:
    row: Visit = ctx.row
    row.visit_date = _visit_date(ctx)
    mode = str(ctx.params.get("mode", row.mode))
    if mode not in MODES:
        raise InvalidInput(f"mode {mode!r}: use in_person or virtual")
    row.mode = mode
    return Effects()


def notify_service(ctx: Context) -> Effects:
    row: Visit = ctx.row
    row.prep_session = row.prep_session or "offered"
    return Effects(
        letters=[
            Letter("visit_notification", to=(*SERVICE, "chief-executive"), cc=("network-manager",)),
            Letter("prep_session_invitation", to=SERVICE, cc=("network-office",)),
        ],
        deadlines=_notification_deadlines(ctx),
    )


def postpone(ctx: Context) -> Effects:
    row: Visit = ctx.row
    row.visit_date = _visit_date(ctx)
    row.postponements += 1
    row.prep_session, row.panel_confirmed = None, False
    if ctx.source == V.SCHEDULED:
        return Effects()
    return Effects(
        letters=[
            Letter(
                "visit_postponed",
                to=(*SERVICE, "chief-executive"),
                cc=("network-manager",),
                context=(("reason", ctx.note),),
            )
        ]
    )


def cancel(ctx: Context) -> Effects:
    ctx.row.closed_reason = ctx.note
    if ctx.source == V.PROPOSED:
        return Effects()
    return Effects(
        letters=[
            Letter(
                "visit_cancelled",
                to=(*SERVICE, "chief-executive"),
                cc=("network-manager",),
                context=(("reason", ctx.note),),
            )
        ]
    )


def check_panel_member(ctx: Context, reviewer: Reviewer) -> None:
    """Refuse, with the reason, a reviewer who may not join this panel."""
    row: Visit = ctx.row
    if reviewer.retired_on is not None and reviewer.retired_on <= ctx.today:
        raise GuardRefused(
            f"{reviewer.name} (reviewer {reviewer.id}) retired from {reviewer.retired_on.isoformat()}: "
            "a retired reviewer is not invited onto panels (peerwatch reviewer history)"
        )
    reason = conflict_reason(ctx.session, row, reviewer)
    if reason:
        raise GuardRefused(
            f"{reviewer.name} may not review {service_of(ctx.session, row.service_id)[0].name}: {reason}"
        )
    exists = ctx.session.exec(
        select(PanelMember).where(PanelMember.visit_id == row.id, PanelMember.reviewer_id == reviewer.id)
    ).first()
    if exists:
        raise GuardRefused(f"{reviewer.name} is already on the panel of visit {row.id}")


def add_panel_member(ctx: Context) -> Effects:
    row: Visit = ctx.row
    reviewer = _reviewer(ctx)
    check_panel_member(ctx, reviewer)
    assert row.id is not None and reviewer.id is not None
    ctx.session.add(
        PanelMember(visit_id=row.id, reviewer_id=reviewer.id, observer=_truthy(ctx.params.get("observer", False)))
    )
    row.panel_confirmed = False
    discipline = DISCIPLINE_NAMES.get(reviewer.discipline, reviewer.discipline)
    return Effects(
        letters=[
            Letter(
                "panel_invitation",
                to=(),
                cc=("network-office",),
                people=((reviewer.name, reviewer.email),),
                key=f"r{reviewer.id}",
                context=(("reviewer", {"name": reviewer.name, "discipline": discipline}),),
            )
        ]
    )


def remove_panel_member(ctx: Context) -> Effects:
    ctx.session.delete(_member(ctx, _reviewer(ctx)))
    ctx.row.panel_confirmed = False
    return Effects()


def confirm_prepared(ctx: Context) -> Effects:
    row: Visit = ctx.row
    assert row.visit_date is not None
    return Effects(deadlines=[NewDeadline("visit_day", row.visit_date)])


def record_declaration(ctx: Context) -> Effects:
    m = _member(ctx, _reviewer(ctx))
    m.declared_on = ctx.today
    m.declared_conflicts = str(ctx.params.get("conflicts") or "").strip() or None
    ctx.session.add(m)
    return Effects()


def record_preparation(ctx: Context) -> Effects:
    row: Visit = ctx.row
    if "prep_session" in ctx.params:
        value = str(ctx.params["prep_session"])
        if value not in ("offered", "held", "declined"):
            raise InvalidInput(f"prep_session {value!r}: use offered, held or declined")
        row.prep_session = value
    for flag in ("panel_confirmed", "evidence_received"):
        if flag in ctx.params:
            setattr(row, flag, _truthy(ctx.params[flag]))
    unknown = set(ctx.params) - {"prep_session", "panel_confirmed", "evidence_received"}
    if unknown or not ctx.params:
        raise InvalidInput(
            "record_preparation takes prep_session=held|declined|offered, panel_confirmed=yes|no, evidence_received=yes|no"
        )
    return Effects()


def hold(ctx: Context) -> Effects:
    return Effects()


def give_feedback(ctx: Context) -> Effects:
    """Raise the IR/SC/GC recorded at high level feedback, and start the report (follow-ons)."""
    visit: Visit = ctx.row
    assert visit.visit_date is not None
    out = Effects()
    for found in ctx.params.get("risks") or []:
        level = str(found.get("level", "")).upper()
        if level not in ("IR", "SC", "GC"):
            raise InvalidInput(f"risk level {level!r} at feedback: use IR, SC or GC")
        risk = Risk(
            service_id=visit.service_id,
            level=level,
            title=str(found.get("title") or "").strip() or f"{level} found at visit",
            standard_ref=found.get("standard_ref"),
            identified_on=visit.visit_date,
            visit_date=visit.visit_date,
            impact=found.get("impact"),
            likelihood=found.get("likelihood"),
            doctors_in_training=bool(found.get("doctors_in_training", False)),
            visit_id=visit.id,
            state="new",
        )
        note = f"verbal notification at high level feedback, visit {visit.id}"
        out.follow_on.append(FollowOn("risk", "raise", new=risk, note=note))
    report = ReportRow(service_id=visit.service_id, visit_id=visit.id, basis_date=visit.visit_date, state="new")
    out.follow_on.append(FollowOn("report", "start_drafting", new=report, note=f"report of visit {visit.id}"))
    return out


def close(ctx: Context) -> Effects:
    return Effects()


ACTIONS = {
    "propose": propose,
    "schedule": schedule,
    "notify_service": notify_service,
    "add_panel_member": add_panel_member,
    "remove_panel_member": remove_panel_member,
    "record_declaration": record_declaration,
    "record_preparation": record_preparation,
    "confirm_prepared": confirm_prepared,
    "hold": hold,
    "give_feedback": give_feedback,
    "close": close,
    "postpone": postpone,
    "cancel": cancel,
}


# The SOP's day (000 s5.3): start, end, session, who. The walk-around is dropped when virtual.
AGENDA = [
    (time(9, 0), time(9, 15), "Introductions", "panel and service"),
    (time(9, 15), time(11, 15), "Unit walk-around", "panel and service"),
    (time(11, 15), time(13, 0), "Review of standards against evidence", "reviewers only"),
    (time(13, 0), time(13, 30), "Lunch", "panel"),
    (time(13, 30), time(15, 30), "Service presentation (30 min) and questions", "panel and service"),
    (time(15, 30), time(16, 30), "Preparing high level feedback", "reviewers only"),
    (time(16, 30), time(17, 0), "High level feedback to the service", "panel and service"),
]


def agenda(visit: Visit) -> list[dict[str, Any]]:
    """The visit day's sessions, from the SOP schedule."""
    if visit.visit_date is None:
        raise GuardRefused(f"visit {visit.id} has no date yet: schedule it first")
    return [
        {
            "start": datetime.combine(visit.visit_date, a),
            "end": datetime.combine(visit.visit_date, b),
            "title": title,
            "who": who,
        }
        for a, b, title, who in AGENDA
        if not (visit.mode == "virtual" and title == "Unit walk-around")
    ]


def panel_view(session: Session, visit: Visit) -> tuple[list[dict[str, Any]], list[str]]:
    """The panel as people read it, and the warnings `visit show` prints."""
    _, _, net = service_of(session, visit.service_id)
    members, warnings = [], []
    for m, r in panel(session, visit.id):  # type: ignore[arg-type]
        org = session.get(Organisation, r.organisation_id) if r.organisation_id else None
        home = session.get(Network, r.network_id) if r.network_id else None
        members.append(
            {
                "reviewer_id": r.id,
                "name": r.name,
                "discipline": "observer" if m.observer else DISCIPLINE_NAMES.get(r.discipline, r.discipline),
                "organisation": org.name if org else None,
                "network": home.code if home else None,
                "other_network": bool(home and home.id != net.id),
                "trained": r.trained,
                "declared_on": m.declared_on.isoformat() if m.declared_on else None,
                "declared_conflicts": m.declared_conflicts,
            }
        )
        if m.declared_on is None:
            warnings.append(f"{r.name} has not returned a conflict-of-interest declaration")
        elif m.declared_conflicts:
            warnings.append(f"{r.name} declared a conflict: {m.declared_conflicts}")
        if not r.trained:
            warnings.append(f"{r.name} has not had reviewer training")
    present = {r.discipline for m, r in panel(session, visit.id) if not m.observer}  # type: ignore[arg-type]
    missing = [DISCIPLINE_NAMES[d] for d in DISCIPLINES if d not in present]
    if missing:
        warnings.insert(0, f"panel has no {', '.join(missing)} member: the SOP asks for a multidisciplinary panel")
    return members, warnings


def letter_context(session: Session, row: Visit) -> dict[str, Any]:
    return {
        "item": {
            "ref": f"Visit-{row.id}",
            "id": row.id,
            "title": "Peer review visit",
            "visit_date": row.visit_date,
            "mode": "virtual" if row.mode == "virtual" else "in person",
            "agenda": agenda(row) if row.visit_date else [],
        },
        **service_context(session, row),
    }


SPEC = KindSpec(
    name="visit",
    model=Visit,
    states=VisitState,
    initial=VisitState.NEW,
    transitions=TRANSITIONS,
    guards={
        "is_preparation_settled": is_preparation_settled,
        "is_panel_confirmed": is_panel_confirmed,
        "has_conflicts_cleared": has_conflicts_cleared,
        "is_evidence_received": is_evidence_received,
        "is_visit_day_reached": is_visit_day_reached,
    },
    actions=ACTIONS,
    deadline_rules=DEADLINE_RULES,
    terminal=frozenset({V.CLOSED.value, V.CANCELLED.value}),
    nation_of=nation_of,
    letter_context=letter_context,
    recipient_scope=recipient_scope,
    next_step={k.value: v for k, v in NEXT_STEP.items()},
    describe="Peer review visits, panels and the visit day (000 s5.2-5.3)",
)
