"""Self-assessment declarations (seed 000 s5.1, Appendix 2; escalation 000 s6.4).

The network office ``circulates`` the Appendix 2 spreadsheet (generated per service from the
current standard set for its kind) to the service's Leads/Managers; the completed return is
due after a local-policy number of weeks (default 6), reminded before and chased to the
Service Lead once late. The returned spreadsheet is imported (``received``) only if every
row passes: a known Ref No., a status of Met, Partially Met or Unmet (Partially Met only
where the standard has that band), a figure from 0 to 100, an evidence location, and a
status that agrees with the figure where the standard has thresholds. Any bad row refuses
the whole file and names every problem by row and column; nothing is imported. Receipt
starts the written report, due 8 weeks later (000 s5.1). The network then records a
validated status beside each self-assessed one (``validated``): the total achievement is
(Met x 1 + Partially Met x 0.5 + Unmet x 0) / standards x 100 (weights: local policy), and a
service below 50% is escalated to its ICBs and Regional Quality Leads (000 s6.4). Then
``closed``. A declaration circulated in error can be ``withdrawn``.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select

from models.selfassessment import SelfAssessment, SelfAssessmentItem, StandardSet
from models.sheets import XLSX_TYPE
from models.tables import Report
from states.errors import InvalidInput, NotFound
from states.machines.lateness import record as record_lateness
from states.machines.spec import Context, DeadlineRule, Effects, FollowOn, KindSpec, Letter, NewDeadline
from states.machines.standards import (
    ESCALATE_BELOW,
    PARTLY,
    STATUSES,
    UNMET,
    SelfAssessmentPolicy,
    bands,
    check_rows,
    current_set,
    derive_status,
    is_below_escalation,
    standards_of,
    status_of,
    total_achievement,
)
from states.roles import NETWORK_LEADS, SERVICE_TEAM, STAFF
from states.scope import nation_of, recipient_scope, service_context, service_of


class SelfAssessmentState(StrEnum):
    NEW = "new"
    CIRCULATED = "circulated"
    RECEIVED = "received"
    VALIDATED = "validated"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


A = SelfAssessmentState
STAFF_ROLES = sorted(STAFF)
LEADS = sorted(NETWORK_LEADS)
# The service's Leads and Managers (000 s5.1) return it themselves, in the Trust portal (issue 16).
RETURNERS = list(SERVICE_TEAM)
TRANSITIONS: list[dict[str, Any]] = [
    {
        "trigger": "circulate",
        "source": A.NEW,
        "dest": A.CIRCULATED,
        "roles": STAFF_ROLES,
        "conditions": ["is_standard_set_current", "is_only_declaration_for_year"],
    },
    {"trigger": "receive", "source": A.CIRCULATED, "dest": A.RECEIVED, "roles": [*STAFF_ROLES, *RETURNERS]},
    {"trigger": "refuse_return", "source": A.CIRCULATED, "dest": None, "roles": STAFF_ROLES},
    {"trigger": "validate_item", "source": A.RECEIVED, "dest": None, "roles": STAFF_ROLES},
    {"trigger": "accept_all", "source": A.RECEIVED, "dest": A.VALIDATED, "roles": STAFF_ROLES},
    {
        "trigger": "complete_validation",
        "source": A.RECEIVED,
        "dest": A.VALIDATED,
        "roles": STAFF_ROLES,
        "conditions": ["are_all_items_validated"],
    },
    {"trigger": "close", "source": A.VALIDATED, "dest": A.CLOSED, "roles": STAFF_ROLES},
    {
        "trigger": "withdraw",
        "source": [A.NEW, A.CIRCULATED],
        "dest": A.WITHDRAWN,
        "roles": LEADS,
        "note_required": True,
    },
]

LEADS_MANAGERS = ("service-lead", "service-manager")  # 000 s5.1: "the Leads and/or Managers of the service"
DEADLINE_RULES = {
    "return": DeadlineRule(
        owner="service-lead",
        step="the service returns the completed self-assessment spreadsheet",
        reminder=Letter("selfassessment_reminder", to=("service-lead",), cc=("service-manager",), category="reminder"),
        overdue=Letter(
            "selfassessment_chase", to=("service-lead",), cc=("service-manager", "network-office"), category="chase"
        ),
    ),
}
REFUSAL = "selfassessment_refused"  # the returned spreadsheet sent back with its problems listed
ESCALATION = Letter(
    "achievement_escalation",
    to=("icb", "regional-quality-lead"),
    cc=("network-manager", "regional-lead", "service-lead"),
)
NEXT_STEP = {
    A.NEW: "Network office: circulate the self-assessment spreadsheet",
    A.CIRCULATED: "Service: complete and return the spreadsheet; network office: import it",
    A.RECEIVED: "Network office: validate each standard (the written report is due 8 weeks after receipt)",
    A.VALIDATED: "Network office: finish the written report, then close the declaration",
}


def _items(session: Session, assessment_id: int | None) -> list[SelfAssessmentItem]:
    return list(
        session.exec(
            select(SelfAssessmentItem)
            .where(SelfAssessmentItem.assessment_id == assessment_id)
            .order_by(col(SelfAssessmentItem.id))
        )
    )


# Guards: pure predicates on the context.
def is_standard_set_current(ctx: Context) -> bool:
    svc = service_of(ctx.session, ctx.row.service_id)[0]
    current = current_set(ctx.session, svc.kind, ctx.today)
    return current is not None and current.id == ctx.row.standard_set_id


def is_only_declaration_for_year(ctx: Context) -> bool:
    other = ctx.session.exec(
        select(SelfAssessment.id).where(
            SelfAssessment.service_id == ctx.row.service_id,
            SelfAssessment.programme_year == ctx.row.programme_year,
            SelfAssessment.id != ctx.row.id,
            col(SelfAssessment.state).not_in([A.NEW.value, A.WITHDRAWN.value]),
        )
    ).first()
    return other is None


def are_all_items_validated(ctx: Context) -> bool:
    items = _items(ctx.session, ctx.row.id)
    return bool(items) and all(i.validated_status is not None for i in items)


# Actions: one per trigger; each may set the declaration's own fields and returns the rest as data.
def circulate(ctx: Context) -> Effects:
    """The return is due after the local-policy weeks, reminded before; the spreadsheet goes out."""
    row: SelfAssessment = ctx.row
    policy = SelfAssessmentPolicy.from_env()
    row.circulated_on = ctx.today
    due = ctx.calendar.add_weeks(ctx.today, policy.selfassessment_return_weeks)
    remind = ctx.calendar.subtract_working_days(due, policy.selfassessment_reminder_working_days)
    return Effects(
        deadlines=[NewDeadline("return", due, remind if remind > ctx.today else None)],
        letters=[
            Letter(
                "selfassessment_request",
                to=LEADS_MANAGERS,
                cc=("network-office",),
                attachments=(spreadsheet(ctx.session, row, return_by=due, made=ctx.now),),
            )
        ],
    )


def receive(ctx: Context) -> Effects:
    """Store every row of the return (all pass, or none); the written report starts, due 8 weeks later."""
    row: SelfAssessment = ctx.row
    rows = ctx.params.get("rows")
    if not isinstance(rows, list):
        raise InvalidInput("receive needs the returned spreadsheet: use peerwatch selfassessment import ID FILE.xlsx")
    for item in check_rows(rows, standards_of(ctx.session, row.standard_set_id)):
        ctx.session.add(SelfAssessmentItem(assessment_id=row.id, **item))  # type: ignore[arg-type]
    row.received_on = ctx.today
    record_lateness(  # issue 12 item 12: stored at receipt
        ctx, ("return",), f"self-assessment return {year_label(row.programme_year)}"
    )
    # The written report is due 8 weeks after receipt (000 s5.1): started through the engine.
    report = Report(service_id=row.service_id, basis_date=row.received_on, state="new")
    return Effects(
        follow_on=[FollowOn("report", "start_drafting", new=report, note=f"report of self-assessment SA-{row.id}")]
    )


def refuse_return(ctx: Context) -> Effects:
    """The returned spreadsheet goes back to the service with its problems listed."""
    problems = ctx.params.get("problems")
    if not isinstance(problems, list) or not problems:
        raise InvalidInput("refuse_return needs the problems found: use peerwatch selfassessment import ID FILE.xlsx")
    count = int(ctx.params.get("count") or len(problems))
    return Effects(
        letters=[
            Letter(
                REFUSAL,
                to=LEADS_MANAGERS,
                cc=("network-office",),
                context=(
                    ("problems", tuple(str(p) for p in problems)),
                    ("problem_count", count),
                    ("more_problems", max(0, count - len(problems))),
                    ("filename", str(ctx.params.get("filename") or "the spreadsheet")),
                ),
            )
        ]
    )


def validate_item(ctx: Context) -> Effects:
    """Record the network's validated status of one standard (a status against the figure needs a reason)."""
    ref = str(ctx.params.get("ref") or "").strip()
    status = status_of(ctx.params.get("status"))
    item = next((i for i in _items(ctx.session, ctx.row.id) if i.ref == ref), None)
    if item is None:
        raise NotFound(
            f"standard {ref!r} is not in self-assessment {ctx.row.id}: validate_item needs ref=... status=..."
        )
    std = next(s for s in standards_of(ctx.session, ctx.row.standard_set_id) if s.ref == ref)
    if status not in STATUSES:
        raise InvalidInput(f"status {ctx.params.get('status')!r}: use Met, Partially Met or Unmet")
    if status == PARTLY and not std.has_partly_band:
        raise InvalidInput(f"standard {ref} has no 'Partially Met' band: use Met or Unmet")
    derived = derive_status(std, item.figure)
    if derived is not None and status != derived and not (ctx.note and ctx.note.strip()):
        raise InvalidInput(
            f"standard {ref}: the figure {item.figure:g} gives {derived} ({bands(std)}); "
            f"to record {status} instead, give the reason with --note"
        )
    item.validated_status = status
    item.validation_note = ctx.note
    ctx.session.add(item)
    return Effects()


def _validated(ctx: Context, accept_rest: bool) -> Effects:
    """The total achievement of the validated statuses; below 50% the service is escalated (000 s6.4)."""
    row: SelfAssessment = ctx.row
    stds = {s.ref: s for s in standards_of(ctx.session, row.standard_set_id)}
    items = _items(ctx.session, row.id)
    if accept_rest:
        for i in items:
            if i.validated_status is None:
                i.validated_status = derive_status(stds[i.ref], i.figure) or i.self_status
                i.validation_note = (
                    "accepted as declared" if i.validated_status == i.self_status else "derived from the figure"
                )
                ctx.session.add(i)
    achievement = total_achievement([i.validated_status or UNMET for i in items], len(stds))
    row.achievement = round(achievement, 1)
    row.validated_on = ctx.today
    return Effects(letters=[ESCALATION] if is_below_escalation(achievement) else [])


def accept_all(ctx: Context) -> Effects:
    """Every standard not yet validated is validated as declared (or as its figure gives)."""
    return _validated(ctx, accept_rest=True)


def complete_validation(ctx: Context) -> Effects:
    return _validated(ctx, accept_rest=False)


ACTIONS = {
    "circulate": circulate,
    "receive": receive,
    "refuse_return": refuse_return,
    "validate_item": validate_item,
    "accept_all": accept_all,
    "complete_validation": complete_validation,
}


# ---------------------------------------------------------------- reading and writing


def year_label(year: int) -> str:
    return f"{year}-{(year + 1) % 100:02d}"


def ref_of(row: SelfAssessment) -> str:
    return f"SA-{row.id}"


def report_of(session: Session, row: SelfAssessment) -> Report | None:
    """The written report started when this declaration was received."""
    if row.received_on is None:
        return None
    return session.exec(
        select(Report)
        .where(
            Report.service_id == row.service_id, col(Report.visit_id).is_(None), Report.basis_date == row.received_on
        )
        .order_by(col(Report.id).desc())
    ).first()


def item_view(session: Session, row: SelfAssessment) -> list[dict[str, Any]]:
    """Each standard with the declared, figure-derived and validated status."""
    items = {i.ref: i for i in _items(session, row.id)}
    out = []
    for std in standards_of(session, row.standard_set_id):
        i = items.get(std.ref)
        out.append(
            {
                "ref": std.ref,
                "descriptor": std.descriptor,
                "criteria_met": std.criteria_met,
                "criteria_partly": std.criteria_partly,
                "criteria_unmet": std.criteria_unmet,
                "has_partly_band": std.has_partly_band,
                "bands": bands(std),
                "self_status": i.self_status if i else None,
                "figure": i.figure if i else None,
                "derived_status": derive_status(std, i.figure) if i else None,
                "comments": i.comments if i else None,
                "evidence_location": i.evidence_location if i else None,
                "validated_status": i.validated_status if i else None,
                "validation_note": i.validation_note if i else None,
            }
        )
    return out


def workbook_document(
    session: Session, row: SelfAssessment, return_by: date | None = None, made: datetime | None = None
) -> dict[str, Any]:
    """Everything the spreadsheet shows, read from the database (the renderer never queries)."""
    sset = session.get(StandardSet, row.standard_set_id)
    assert sset is not None
    return {
        **service_context(session, row),
        "assessment": {
            "id": row.id,
            "ref": ref_of(row),
            "programme_year": year_label(row.programme_year),
            "return_by": return_by,
        },
        "standard_set": {"name": sset.name, "version": sset.version, "effective_from": sset.effective_from},
        "rows": item_view(session, row),
        "created": made,
    }


def spreadsheet(
    session: Session, row: SelfAssessment, return_by: date | None = None, made: datetime | None = None
) -> tuple[str, str, tuple[str, dict[str, Any]]]:
    """(filename, content type, (renderer, its data)) of the Appendix 2 spreadsheet for this
    declaration: notifications/spreadsheets.py renders it (the dispatcher, when the letter goes)."""
    svc = service_of(session, row.service_id)[0]
    stem = "-".join(svc.name.lower().split())
    data = ("selfassessment_xlsx", workbook_document(session, row, return_by, made))
    return (f"self-assessment-{stem}-{year_label(row.programme_year)}-{ref_of(row)}.xlsx", XLSX_TYPE, data)


def latest_achievements(session: Session, service_ids: list[int]) -> dict[int, float]:
    """The most recent validated total achievement per service (for the visit weighting)."""
    out: dict[int, float] = {}
    q = (
        select(SelfAssessment)
        .where(col(SelfAssessment.service_id).in_(service_ids), col(SelfAssessment.achievement).is_not(None))
        .order_by(col(SelfAssessment.programme_year), col(SelfAssessment.validated_on), col(SelfAssessment.id))
    )
    for row in session.exec(q):
        out[row.service_id] = row.achievement  # type: ignore[assignment]
    return out


def letter_context(session: Session, row: SelfAssessment) -> dict[str, Any]:
    sset = session.get(StandardSet, row.standard_set_id)
    assert sset is not None
    items = _items(session, row.id)
    counts = {s: sum(1 for i in items if (i.validated_status or i.self_status) == s) for s in STATUSES}
    return {
        "item": {
            "ref": ref_of(row),
            "id": row.id,
            "title": f"Self-assessment declaration {year_label(row.programme_year)}",
            "programme_year": year_label(row.programme_year),
            "standard_set": f"{sset.name}, version {sset.version}",
            "circulated_on": row.circulated_on,
            "received_on": row.received_on,
            "achievement": row.achievement,
            "threshold": ESCALATE_BELOW,
            "counts": counts,
            "standards": len(standards_of(session, row.standard_set_id)),
            "problems_listed": SelfAssessmentPolicy.from_env().selfassessment_max_problems_listed,
        },
        **service_context(session, row),
    }


SPEC = KindSpec(
    name="selfassessment",
    model=SelfAssessment,
    states=SelfAssessmentState,
    initial=SelfAssessmentState.NEW,
    transitions=TRANSITIONS,
    guards={
        "is_standard_set_current": is_standard_set_current,
        "is_only_declaration_for_year": is_only_declaration_for_year,
        "are_all_items_validated": are_all_items_validated,
    },
    actions=ACTIONS,
    deadline_rules=DEADLINE_RULES,
    terminal=frozenset({A.CLOSED.value, A.WITHDRAWN.value}),
    nation_of=nation_of,
    letter_context=letter_context,
    recipient_scope=recipient_scope,
    next_step={k.value: v for k, v in NEXT_STEP.items()},
    describe="Self-assessment declarations against the standards (000 s5.1, Appendix 2)",
)
