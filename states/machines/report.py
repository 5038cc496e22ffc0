"""The written peer review report (seed 000 s5.1, s5.4, Appendix 3).

``drafting``: the network office writes the report, due 8 weeks after the visit (or after
receipt of a self-assessment), reminded before and on the due date. Sent to the service for
a factual accuracy check (``accuracy_check``): its reply is due after a configurable number
of working days (local policy, default 10) and is chased when late. Only what was observed
on the day counts: an "inaccuracy" stated as a change made after the visit is refused. The
service enters its own inaccuracies in the portal (its leads and its Trust's executives, issue
16) until its reply's due date; the network office may record one for it at any time of the check.
Each inaccuracy received (``inaccuracies_received``) is accepted or rejected by the Network
Manager **and** by the Regional Network Lead, two different people; it is amended only if
both accept. Then ``approved``, ``distributed`` to the Service Lead and the SOP's list (with
the PDF), and ``published``: the publication date opens the 4-week appeal window. An upheld appeal
reopens it (``amending``) and re-issues it as the next issue (``published`` again).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select

from models.tables import AccuracyItem, Deadline, Report, Risk, Visit
from models.types import is_row_id
from states.errors import GuardRefused, InvalidInput, NotFound
from states.machines import lateness
from states.machines.spec import Context, DeadlineRule, Effects, KindSpec, Letter, NewDeadline
from states.roles import NETWORK_LEADS, NETWORK_MANAGER, SERVICE_TEAM, STAFF, SYSTEM
from states.scope import nation_of, recipient_scope, service_context

COMPLIANCE = ("Met", "Partially Met", "Unmet", "Not applicable")
# 000 s5.4: the final report goes to the Service Lead and is shared with these.
DISTRIBUTION = (
    "lead-doctor",
    "lead-nurse",
    "ahp-lead",
    "service-manager",
    "divisional-manager",
    "divisional-director",
    "medical-director",
    "responsible-executive",
    "responsible-commissioner",
)


class ReportState(StrEnum):
    NEW = "new"
    DRAFTING = "drafting"
    ACCURACY_CHECK = "accuracy_check"
    INACCURACIES_RECEIVED = "inaccuracies_received"
    APPROVED = "approved"
    DISTRIBUTED = "distributed"
    PUBLISHED = "published"
    AMENDING = "amending"


R = ReportState
STAFF_ROLES = sorted(STAFF)
LEADS = sorted(NETWORK_LEADS)
# The service states its own inaccuracies in the portal (issue 16): its leads and its Trust's executives.
SERVICE_ACCURACY_ROLES = (
    "service-lead",
    "lead-doctor",
    "lead-nurse",
    "service-manager",
    "medical-director",
    "chief-executive",
)
CHECK_OPEN = (ReportState.ACCURACY_CHECK.value, ReportState.INACCURACIES_RECEIVED.value)

TRANSITIONS: list[dict[str, Any]] = [
    # A self-assessment the service returned itself (the portal) starts its report as that person.
    {"trigger": "start_drafting", "source": R.NEW, "dest": R.DRAFTING, "roles": [*STAFF_ROLES, SYSTEM, *SERVICE_TEAM]},
    {"trigger": "add_standard", "source": R.DRAFTING, "dest": None, "roles": STAFF_ROLES},
    {"trigger": "add_positive", "source": R.DRAFTING, "dest": None, "roles": STAFF_ROLES},
    {"trigger": "send_for_accuracy_check", "source": R.DRAFTING, "dest": R.ACCURACY_CHECK, "roles": STAFF_ROLES},
    {
        "trigger": "record_inaccuracy",
        "source": [R.ACCURACY_CHECK, R.INACCURACIES_RECEIVED],
        "dest": R.INACCURACIES_RECEIVED,
        "roles": [*STAFF_ROLES, *SERVICE_ACCURACY_ROLES],
    },
    {"trigger": "decide_inaccuracy", "source": R.INACCURACIES_RECEIVED, "dest": None, "roles": LEADS},
    {"trigger": "approve", "source": R.ACCURACY_CHECK, "dest": R.APPROVED, "roles": LEADS},
    {
        "trigger": "approve",
        "source": R.INACCURACIES_RECEIVED,
        "dest": R.APPROVED,
        "roles": LEADS,
        "conditions": ["are_all_inaccuracies_decided"],
    },
    {"trigger": "distribute", "source": R.APPROVED, "dest": R.DISTRIBUTED, "roles": STAFF_ROLES},
    {"trigger": "publish", "source": R.DISTRIBUTED, "dest": R.PUBLISHED, "roles": LEADS},
    # After an upheld appeal (000 s8.1): amended and re-issued, linked to the appeal.
    {
        "trigger": "reopen_for_amendment",
        "source": R.PUBLISHED,
        "dest": R.AMENDING,
        "roles": LEADS,
        "note_required": True,
    },
    {"trigger": "reissue", "source": R.AMENDING, "dest": R.PUBLISHED, "roles": LEADS, "note_required": True},
]

OFFICE = ("network-office",)
DEADLINE_RULES = {
    "report_due": DeadlineRule(
        owner="network-office",
        step="write the report and send it for the factual accuracy check",
        reminder=Letter("report_due_soon", to=OFFICE, category="reminder"),
        due_today=Letter("report_due_today", to=OFFICE, cc=("network-manager",), category="reminder"),
        overdue=Letter("report_overdue", to=OFFICE, cc=("network-manager", "regional-lead"), category="chase"),
    ),
    "accuracy_reply": DeadlineRule(
        owner="service-lead",
        step="the service returns its factual accuracy comments",
        reminder=Letter("accuracy_reply_reminder", to=("service-lead",), category="reminder"),
        overdue=Letter("accuracy_reply_chase", to=("service-lead",), cc=("network-office",), category="chase"),
    ),
}

NEXT_STEP = {
    R.DRAFTING: "Network office: write the report; send it to the service for the factual accuracy check",
    R.ACCURACY_CHECK: "Service: state any factual inaccuracies (observations on the day only)",
    R.INACCURACIES_RECEIVED: "Network Manager and Regional Lead: each accept or reject every inaccuracy, then approve",
    R.APPROVED: "Network office: distribute the final report",
    R.DISTRIBUTED: "Network Manager / Regional Lead: publish (opens the 4-week appeal window)",
    R.AMENDING: "Network Manager / Regional Lead: amend and re-issue the report after the appeal",
}

# Words that say a statement describes a change made after the visit (000 s5.4).
AFTER_VISIT = (
    "since the visit",
    "after the visit",
    "has since",
    "have since",
    "now in place",
    "since then",
    "subsequently",
    "following the visit",
    "we have now",
    "has now been",
    "have now been",
)


def _items(session: Session, report_id: int) -> list[AccuracyItem]:
    return list(session.exec(select(AccuracyItem).where(AccuracyItem.report_id == report_id).order_by(AccuracyItem.id)))  # type: ignore[arg-type]


def are_all_inaccuracies_decided(ctx: Context) -> bool:
    return all(i.outcome is not None for i in _items(ctx.session, ctx.row.id))


def is_after_visit_change(text: str) -> bool:
    lowered = " ".join(text.lower().split())
    return any(p in lowered for p in AFTER_VISIT)


def accuracy_reply_due(session: Session, row: Report) -> date | None:
    """The day the service's factual accuracy reply is due: the newest ``accuracy_reply`` deadline
    (kept after it closes, so the day is known once the first inaccuracy is in); None before."""
    return session.exec(
        select(col(Deadline.due_on))
        .where(Deadline.kind == "report", Deadline.item_id == row.id, Deadline.name == "accuracy_reply")
        .order_by(col(Deadline.id).desc())
    ).first()


def accuracy_window_problem(session: Session, row: Report, today: date) -> str | None:
    """Why the service may not state an inaccuracy now (None: it may): the draft is not with it,
    the check is over, or its reply's due date has passed (the network office may still record
    one the service sends late)."""
    if row.state in (R.NEW, R.DRAFTING):
        return "the draft report has not been sent to the service for its factual accuracy check yet"
    if row.state not in CHECK_OPEN:
        return (
            f"the factual accuracy check is over: the report was approved on {row.approved_on:%a %d %b %Y}"
            if row.approved_on
            else f"the factual accuracy check is over (the report is {row.state.replace('_', ' ')})"
        )
    due = accuracy_reply_due(session, row)
    if due is not None and today > due:
        return (
            f"the factual accuracy check closed on {due:%a %d %b %Y}: "
            "send any late comment to the network office, who may record it"
        )
    return None


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes", "y")


# Actions: one per trigger; each may set the report's own fields and returns the rest as data.
def start_drafting(ctx: Context) -> Effects:
    """The report is due the policy's weeks after its basis date (the visit, or the self-assessment's receipt)."""
    row: Report = ctx.row
    due = ctx.calendar.add_weeks(row.basis_date, ctx.policy.report_weeks)
    remind = ctx.calendar.subtract_working_days(due, ctx.policy.reminder_working_days)
    return Effects(deadlines=[NewDeadline("report_due", due, remind if remind > ctx.today else None)])


def add_standard(ctx: Context) -> Effects:
    row: Report = ctx.row
    ref, status = str(ctx.params.get("ref") or "").strip(), str(ctx.params.get("status") or "").strip()
    if not ref or status not in COMPLIANCE:
        raise InvalidInput(f"add_standard needs ref=... and status= one of {', '.join(COMPLIANCE)}")
    entry = {
        "ref": ref,
        "descriptor": str(ctx.params.get("descriptor") or ""),
        "status": status,
        "comment": str(ctx.params.get("comment") or ""),
    }
    row.compliance = [c for c in row.compliance if c["ref"] != ref] + [entry]
    return Effects()


def add_positive(ctx: Context) -> Effects:
    text = str(ctx.params.get("text") or "").strip()
    if not text:
        raise InvalidInput("add_positive needs text=...")
    ctx.row.positives = [*ctx.row.positives, text]
    return Effects()


def send_for_accuracy_check(ctx: Context) -> Effects:
    """The draft goes to the service for its factual accuracy reply, due in the policy's working days."""
    row: Report = ctx.row
    due = ctx.calendar.add_working_days(ctx.today, ctx.policy.factual_accuracy_working_days)
    return Effects(
        deadlines=[
            NewDeadline(
                "accuracy_reply", due, ctx.calendar.subtract_working_days(due, ctx.policy.reminder_working_days)
            )
        ],
        letters=[
            Letter(
                "factual_accuracy_request",
                to=("service-lead",),
                cc=("chief-executive", "network-office"),
                attachments=(_pdf(ctx.session, row, draft=True),),
            )
        ],
    )


def record_inaccuracy(ctx: Context) -> Effects:
    """An inaccuracy as the service states it; a change made after the visit is refused (SOP 5.4)."""
    row: Report = ctx.row
    text = str(ctx.params.get("text") or "").strip()
    if not text:
        raise InvalidInput("record_inaccuracy needs text=... (the inaccuracy as the service states it)")
    if _truthy(ctx.params.get("after_visit", False)) or is_after_visit_change(text):
        raise GuardRefused(
            "not a factual accuracy item: it describes a change made after the visit, and only "
            f"observations on the day count (SOP 5.4): {text!r}"
        )
    if ctx.role in SERVICE_ACCURACY_ROLES:  # the service's own entry (the portal): only within its window
        problem = accuracy_window_problem(ctx.session, row, ctx.today)
        if problem:
            raise GuardRefused(f"inaccuracy not recorded: {problem}")
    ctx.session.add(AccuracyItem(report_id=row.id, text=text))  # type: ignore[arg-type]
    if ctx.source == R.ACCURACY_CHECK:  # the reply is in: the accuracy_reply deadline closes with the state change
        lateness.record(ctx, ("accuracy_reply",), "factual accuracy reply")
    return Effects()


def approve(ctx: Context) -> Effects:
    if ctx.source == R.ACCURACY_CHECK:  # approved with no inaccuracy recorded: the service's reply came with it
        lateness.record(ctx, ("accuracy_reply",), "factual accuracy reply (no inaccuracies)")
    ctx.row.approved_on = ctx.today
    return Effects()


def distribute(ctx: Context) -> Effects:
    row: Report = ctx.row
    row.distributed_on = ctx.today
    return Effects(
        letters=[
            Letter(
                "report_distribution",
                to=("service-lead",),
                cc=DISTRIBUTION,
                attachments=(_pdf(ctx.session, row, draft=False),),
            )
        ]
    )


def publish(ctx: Context) -> Effects:
    ctx.row.published_on = ctx.today
    return Effects()


def reissue(ctx: Context) -> Effects:
    """A new issue (after an upheld appeal), sent to everyone the report went to, with the reason."""
    row: Report = ctx.row
    row.issue += 1
    row.reissued_on = ctx.today
    return Effects(
        letters=[
            Letter(
                "report_reissued",
                to=("service-lead",),
                cc=DISTRIBUTION,
                key=f"issue{row.issue}",
                attachments=(_pdf(ctx.session, row, draft=False),),
                context=(("reason", ctx.note),),
            )
        ]
    )


def decide_inaccuracy(ctx: Context) -> Effects:
    """One of the two decisions on an inaccuracy: the Network Manager's and the Regional Network Lead's, two people."""
    try:
        item_id = int(ctx.params["item_id"])
    except (KeyError, TypeError, ValueError):
        raise InvalidInput("decide_inaccuracy needs item_id=N and decision=accepted|rejected") from None
    decision = str(ctx.params.get("decision", ""))
    if decision not in ("accepted", "rejected"):
        raise InvalidInput(f"decision {decision!r}: use accepted or rejected")
    item = ctx.session.get(AccuracyItem, item_id) if is_row_id(item_id) else None
    if item is None or item.report_id != ctx.row.id:
        raise NotFound(f"inaccuracy {item_id} not found on report {ctx.row.id}")
    mine, other = ("manager", "lead") if ctx.role == NETWORK_MANAGER else ("lead", "manager")
    if getattr(item, f"{mine}_decision") is not None:
        raise GuardRefused(
            f"inaccuracy {item_id} already has the {ctx.role} decision ({getattr(item, f'{mine}_decision')})"
        )
    if getattr(item, f"{other}_user_id") == ctx.user_id:
        raise GuardRefused(
            f"{ctx.actor} already decided inaccuracy {item_id} in the other role: "
            "the Network Manager and the Regional Network Lead must be two people"
        )
    setattr(item, f"{mine}_decision", decision)
    setattr(item, f"{mine}_actor", ctx.actor)
    setattr(item, f"{mine}_user_id", ctx.user_id)
    ctx.session.add(item)
    return Effects()


ACTIONS = {
    "start_drafting": start_drafting,
    "add_standard": add_standard,
    "add_positive": add_positive,
    "send_for_accuracy_check": send_for_accuracy_check,
    "record_inaccuracy": record_inaccuracy,
    "decide_inaccuracy": decide_inaccuracy,
    "approve": approve,
    "distribute": distribute,
    "publish": publish,
    "reissue": reissue,
}


def document(session: Session, row: Report) -> dict[str, Any]:
    """Everything the report document shows, read from the database (templates never query)."""
    visit = session.get(Visit, row.visit_id) if row.visit_id else None
    risks = (
        list(session.exec(select(Risk).where(Risk.visit_id == row.visit_id).order_by(col(Risk.id))))
        if row.visit_id
        else []
    )
    items = _items(session, row.id)  # type: ignore[arg-type]
    counts = {s: sum(1 for c in row.compliance if c["status"] == s) for s in COMPLIANCE}
    scored = [c for c in row.compliance if c["status"] != "Not applicable"]
    achieved = sum({"Met": 1.0, "Partially Met": 0.5}.get(c["status"], 0.0) for c in scored)
    return {
        **service_context(session, row),
        "report": {
            "id": row.id,
            "issue": row.issue,
            "state": row.state,
            "basis_date": row.basis_date,
            "approved_on": row.approved_on,
            "published_on": row.published_on,
            "reissued_on": row.reissued_on,
            "summary": row.summary,
        },
        "visit": {"date": visit.visit_date, "mode": "virtual" if visit.mode == "virtual" else "in person"}
        if visit
        else None,
        "compliance": row.compliance,
        "counts": counts,
        "achievement": round(100 * achieved / len(scored), 1) if scored else None,
        "positives": row.positives,
        "risks": [
            {
                "ref": f"{r.level}-{r.id}",
                "level": r.level,
                "title": r.title,
                "standard_ref": r.standard_ref,
                "score": r.impact * r.likelihood if r.impact and r.likelihood else None,
                "state": r.state,
            }
            for r in risks
        ],
        "inaccuracies": [{"id": i.id, "text": i.text, "outcome": i.outcome} for i in items],
    }


def _pdf(session: Session, row: Report, draft: bool) -> tuple[str, str, tuple[str, dict[str, Any]]]:
    """The report PDF that travels with a letter: its data as it is now, rendered when the letter is sent."""
    data = ("report_pdf", {"document": document(session, row), "draft": draft})
    return (f"peer-review-report-{row.id}{'-draft' if draft else ''}.pdf", "application/pdf", data)


def letter_context(session: Session, row: Report) -> dict[str, Any]:
    return {
        "item": {
            "ref": f"Report-{row.id}",
            "id": row.id,
            "title": "Peer review report",
            "basis_date": row.basis_date,
            "issue": row.issue,
            "published_on": row.published_on,
        },
        **service_context(session, row),
    }


SPEC = KindSpec(
    name="report",
    model=Report,
    states=ReportState,
    initial=ReportState.NEW,
    transitions=TRANSITIONS,
    guards={"are_all_inaccuracies_decided": are_all_inaccuracies_decided},
    actions=ACTIONS,
    deadline_rules=DEADLINE_RULES,
    terminal=frozenset(),  # a published report can still be amended after an appeal
    nation_of=nation_of,
    letter_context=letter_context,
    recipient_scope=recipient_scope,
    next_step={k.value: v for k, v in NEXT_STEP.items()},
    describe="Peer review reports and the factual accuracy check (000 s5.4)",
)
