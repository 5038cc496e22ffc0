"""Immediate risks, serious concerns and general concerns (seed 000 s6, Appendices 3-4).

IR and SC: raised on the day of the visit (verbal notification at high level feedback) or
at self-assessment validation -> ``identified``, with the formal notification letter due
5 working days after the visit. The Network Manager and Regional Lead send it ->
``awaiting_response``: the Trust's formal response is due 10 (IR) or 20 (SC) working days
after the notification, with a reminder beforehand. An adequate response -> ``monitoring``
(action plan with milestones, reviewed quarterly) -> ``closed``. No response by the deadline
-> the sweep fires ``no_response`` -> ``chased`` by the Network Manager and Regional Lead;
still none -> ``escalated`` to the Commissioning Lead and the CQC. A first inadequate response
-> a letter to the executive team and a further deadline (``further_response_requested``);
inadequate again -> ``escalated``: Commissioning Lead and CQC, plus the TPD and RA when
doctors in training are affected. A score (impact x likelihood, 6x6) above 12 notifies the
Acute Specialised Commissioning Team.

The Trust answers in the portal (issue 16): its Chief Executive, Medical Director or Service
Lead fires ``submit_response`` (awaiting, chased, further response requested, or late after
escalation) -> ``response_received``: the response and its files are stored by
``states/services/responses.py``; leaving the waiting state closes the response and chase
deadlines, so the "no response" chase stops; the Trust gets an acknowledgement and the Network
Manager a deadline to judge it (``judge_response``, policy ``response_judgement_working_days``,
5 working days). ``response_adequate`` / ``response_inadequate`` then fire from
``response_received`` (and still from the waiting states, for a response received on paper),
stamping the judgement on the latest portal response.

GC: raised -> ``work_programme``, monitored quarterly -> ``closed``.
Any open item may be ``withdrawn`` with a reason.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select

from models.portal import RiskResponse
from models.tables import Risk
from states.errors import GuardRefused, InvalidInput
from states.machines.spec import (
    CloseDeadline,
    Context,
    DeadlineRule,
    Effects,
    KindSpec,
    Letter,
    MoveDeadline,
    NewDeadline,
)
from states.roles import NETWORK_LEADS, STAFF, SYSTEM
from states.scope import nation_of, recipient_scope, service_context

LEVELS = {"IR": "Immediate risk", "SC": "Serious concern", "GC": "General concern"}
RESPONSE_WORKING_DAYS = {"IR": 10, "SC": 20}  # 000 s6: formal response deadlines
FORMAL_NOTIFICATION_WORKING_DAYS = 5  # 000 s6 step 2: letter within 5 working days of the visit


class RiskState(StrEnum):
    NEW = "new"
    IDENTIFIED = "identified"
    AWAITING_RESPONSE = "awaiting_response"
    CHASED = "chased"
    FURTHER_RESPONSE_REQUESTED = "further_response_requested"
    RESPONSE_RECEIVED = "response_received"
    ESCALATED = "escalated"
    MONITORING = "monitoring"
    WORK_PROGRAMME = "work_programme"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


S = RiskState
LEADS = sorted(NETWORK_LEADS)
OPEN = [s.value for s in S if s not in (S.NEW, S.CLOSED, S.WITHDRAWN)]
AWAITING = [S.AWAITING_RESPONSE.value, S.CHASED.value, S.FURTHER_RESPONSE_REQUESTED.value]
JUDGED_FROM = [*AWAITING, S.RESPONSE_RECEIVED.value]  # a response in the portal, or one received on paper
TRUST = ("chief-executive", "medical-director", "service-lead")  # who answers for the organisation (000 s6)

TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "raise", "source": S.NEW, "dest": S.IDENTIFIED, "conditions": ["is_ir_or_sc"], "roles": sorted(STAFF)},
    {"trigger": "raise", "source": S.NEW, "dest": S.WORK_PROGRAMME, "conditions": ["is_gc"], "roles": sorted(STAFF)},
    {"trigger": "send_formal_notification", "source": S.IDENTIFIED, "dest": S.AWAITING_RESPONSE, "roles": LEADS},
    {
        "trigger": "no_response",
        "source": [S.AWAITING_RESPONSE, S.FURTHER_RESPONSE_REQUESTED],
        "dest": S.CHASED,
        "roles": [SYSTEM, *LEADS],
    },
    {"trigger": "still_no_response", "source": S.CHASED, "dest": S.ESCALATED, "roles": [SYSTEM, *LEADS]},
    {
        "trigger": "submit_response",
        "source": [*AWAITING, S.ESCALATED],
        "dest": S.RESPONSE_RECEIVED,
        "roles": list(TRUST),
    },
    {"trigger": "response_adequate", "source": [*JUDGED_FROM, S.ESCALATED], "dest": S.MONITORING, "roles": LEADS},
    {
        "trigger": "response_inadequate",
        "source": JUDGED_FROM,
        "dest": S.FURTHER_RESPONSE_REQUESTED,
        "unless": ["has_inadequate_response"],
        "roles": LEADS,
    },
    {
        "trigger": "response_inadequate",
        "source": JUDGED_FROM,
        "dest": S.ESCALATED,
        "conditions": ["has_inadequate_response"],
        "roles": LEADS,
    },
    {
        "trigger": "record_progress",
        "source": [S.MONITORING, S.WORK_PROGRAMME],
        "dest": None,
        "roles": sorted(STAFF),
        "note_required": True,
    },
    {"trigger": "rescore", "source": OPEN, "dest": None, "roles": LEADS},
    {"trigger": "report_to_national", "source": S.ESCALATED, "dest": None, "roles": LEADS},
    {
        "trigger": "regrade",
        "source": [S.IDENTIFIED, *JUDGED_FROM, S.ESCALATED],
        "dest": None,
        "roles": LEADS,
        "note_required": True,
    },
    {
        "trigger": "close",
        "source": [S.MONITORING, S.WORK_PROGRAMME],
        "dest": S.CLOSED,
        "roles": LEADS,
        "note_required": True,
    },
    {"trigger": "withdraw", "source": OPEN, "dest": S.WITHDRAWN, "roles": LEADS, "note_required": True},
]

NETWORK = ("network-manager", "regional-lead")
ESCALATION = Letter(
    "escalation", to=("commissioning-lead", "cqc"), cc=(*NETWORK, "chief-executive", "accountable-officer")
)
TPD_RA = Letter("tpd_ra", to=("tpd", "ra"), cc=(*NETWORK, "medical-director"))
ASCT = Letter("asct_notice", to=("asct",), cc=NETWORK)

DEADLINE_RULES = {
    "formal_notification": DeadlineRule(
        owner="network-manager",
        step="Network Manager and Regional Lead send the formal notification letter",
        reminder=Letter("formal_notification_due", to=NETWORK, category="reminder"),
        overdue=Letter("formal_notification_overdue", to=NETWORK, category="chase"),
    ),
    "response": DeadlineRule(
        owner="chief-executive",
        step="the Trust sends its formal response",
        on_due="no_response",
        reminder=Letter("response_reminder", to=TRUST, category="reminder"),
    ),
    "further_response": DeadlineRule(
        owner="chief-executive",
        step="the Trust sends a further, adequate response",
        on_due="no_response",
        reminder=Letter("response_reminder", to=TRUST, category="reminder"),
    ),
    "chase_response": DeadlineRule(
        owner="chief-executive",
        step="the Trust responds to the chase, or the item is escalated",
        on_due="still_no_response",
    ),
    "judge_response": DeadlineRule(
        owner="network-manager",
        step="Network Manager judges the Trust's formal response adequate or inadequate",
        reminder=Letter("response_judgement_due", to=("network-manager",), category="reminder"),
        overdue=Letter("response_judgement_overdue", to=NETWORK, category="chase"),
    ),
    "monitoring_review": DeadlineRule(
        owner="network-manager",
        step="review progress against the action plan or work programme (quarterly)",
        reminder=Letter("monitoring_review_due", to=("network-manager",), category="reminder"),
        overdue=Letter("monitoring_review_overdue", to=NETWORK, category="chase"),
    ),
}

NEXT_STEP = {
    S.IDENTIFIED: "Network Manager and Regional Lead: send the formal notification letter",
    S.AWAITING_RESPONSE: (
        "Trust (Chief Executive, Medical Director or Service Lead): submit the formal response in the portal; "
        "network: judge a response received on paper adequate or inadequate"
    ),
    S.CHASED: "Trust: submit the formal response before escalation",
    S.FURTHER_RESPONSE_REQUESTED: "Trust: submit a further response addressing the inadequacies",
    S.RESPONSE_RECEIVED: "Network Manager: judge the Trust's response adequate or inadequate",
    S.ESCALATED: (
        "Commissioning Lead and CQC informed; Trust: a late response may still be submitted; "
        "network: record a later adequate response or report to national leads"
    ),
    S.MONITORING: "Network: monitor the action plan quarterly until closed",
    S.WORK_PROGRAMME: "Service: address through the work programme; network: monitor quarterly",
}


# Guards: pure predicates on the context.
def is_ir_or_sc(ctx: Context) -> bool:
    return bool(ctx.row.level in RESPONSE_WORKING_DAYS)


def is_gc(ctx: Context) -> bool:
    return bool(ctx.row.level == "GC")


def has_inadequate_response(ctx: Context) -> bool:
    return bool(ctx.row.inadequate_responses > 0)


def score(row: Risk) -> int | None:
    if row.impact is None or row.likelihood is None:
        return None
    return row.impact * row.likelihood


def check_score(impact: Any, likelihood: Any) -> tuple[int | None, int | None]:
    """Validate a 6x6 matrix position (Appendix 4): both 1-6, or both absent."""
    if impact is None and likelihood is None:
        return None, None
    try:
        i, lk = int(impact), int(likelihood)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"impact and likelihood must both be given as whole numbers 1-6 (got {impact!r}, {likelihood!r})"
        ) from None
    if not (1 <= i <= 6 and 1 <= lk <= 6):
        raise InvalidInput(f"impact and likelihood must be 1-6 on the 6x6 matrix (got {i} x {lk})")
    return i, lk


def _review(ctx: Context) -> NewDeadline:
    due = ctx.calendar.add_weeks(ctx.today, ctx.policy.monitoring_weeks)
    return NewDeadline(
        "monitoring_review", due, ctx.calendar.subtract_working_days(due, ctx.policy.reminder_working_days)
    )


def _response(ctx: Context, name: str, working_days: int) -> NewDeadline:
    due = ctx.calendar.add_working_days(ctx.today, working_days)
    return NewDeadline(name, due, ctx.calendar.subtract_working_days(due, ctx.policy.reminder_working_days))


def _escalation(row: Risk) -> list[Letter]:
    return [ESCALATION, TPD_RA] if row.doctors_in_training else [ESCALATION]


# Validators: refuse with a reason.
def check_regrade(row: Risk, level: str) -> str:
    """IR <-> SC only, and to a different level."""
    if level not in RESPONSE_WORKING_DAYS or level == row.level:
        raise InvalidInput(f"regrade needs level=IR or SC, different from the current {row.level}")
    return level


# Actions: one per trigger; each may set the row's own fields and returns the rest as data.
def raise_risk(ctx: Context) -> Effects:
    row: Risk = ctx.row
    row.impact, row.likelihood = check_score(row.impact, row.likelihood)
    if row.level not in RESPONSE_WORKING_DAYS:
        return Effects(deadlines=[_review(ctx)])
    anchor = row.visit_date or row.identified_on
    due = ctx.calendar.add_working_days(anchor, FORMAL_NOTIFICATION_WORKING_DAYS)
    remind = ctx.calendar.subtract_working_days(due, ctx.policy.reminder_working_days)
    out = Effects(deadlines=[NewDeadline("formal_notification", due, remind if remind > ctx.today else None)])
    if (score(row) or 0) > ctx.policy.asct_threshold:
        out.letters.append(ASCT)
    return out


def send_formal_notification(ctx: Context) -> Effects:
    row: Risk = ctx.row
    row.formal_notification_on = ctx.today
    return Effects(
        letters=[Letter("formal_notification", to=TRUST, cc=("accountable-officer",))],
        deadlines=[_response(ctx, "response", RESPONSE_WORKING_DAYS[row.level])],
    )


def no_response(ctx: Context) -> Effects:
    due = ctx.calendar.add_working_days(ctx.today, ctx.policy.chase_response_working_days)
    return Effects(
        letters=[Letter("chase", to=TRUST, cc=NETWORK, category="chase")],
        deadlines=[NewDeadline("chase_response", due)],
    )


def still_no_response(ctx: Context) -> Effects:
    return Effects(letters=_escalation(ctx.row))


def responses(session: Session, risk_id: int) -> list[RiskResponse]:
    """The risk's formal responses sent in the portal, first to last."""
    return list(
        session.exec(select(RiskResponse).where(RiskResponse.risk_id == risk_id).order_by(col(RiskResponse.number)))
    )


def next_response_number(session: Session, risk_id: int) -> int:
    found = session.exec(
        select(RiskResponse.number).where(RiskResponse.risk_id == risk_id).order_by(col(RiskResponse.number).desc())
    ).first()
    return (found or 0) + 1


def _file_names(files: Any) -> tuple[str, ...]:
    """The names of the files the response came with (``file``: rows of filename, sha256, size),
    as the response use case gives them: fired without them, there would be no response to judge."""
    if files is None:
        raise InvalidInput(
            "a formal response is sent with its text and files by the response form "
            "(/risks/ID/respond, states.services.responses), not fired on its own"
        )
    if not isinstance(files, list | tuple) or not all(
        isinstance(f, dict) and isinstance(f.get("filename"), str) for f in files
    ):
        raise InvalidInput("submit_response's files are given by the portal's response form, not by hand")
    return tuple(str(f["filename"]) for f in files)


def submit_response(ctx: Context) -> Effects:
    """The Trust's formal response arrived (its text and files are stored by the use case):
    acknowledged to the Trust, and the Network Manager has a deadline to judge it."""
    names = _file_names(ctx.params.get("file"))
    number = next_response_number(ctx.session, ctx.row.id)
    due = ctx.calendar.add_working_days(ctx.today, ctx.policy.response_judgement_working_days)
    remind = ctx.calendar.subtract_working_days(due, ctx.policy.reminder_working_days)
    return Effects(
        letters=[
            Letter(
                "response_received",
                to=TRUST,
                cc=("network-manager",),
                context=(("response_number", number), ("response_files", names), ("judge_by", due)),
            )
        ],
        deadlines=[NewDeadline("judge_response", due, remind if remind > ctx.today else None)],
    )


def _judge(ctx: Context, judgement: str) -> None:
    """Stamp the judgement on the response in the portal being judged (none for a paper one)."""
    if ctx.source != S.RESPONSE_RECEIVED:
        return
    found = responses(ctx.session, ctx.row.id)
    latest = found[-1] if found else None
    if latest is None or latest.judgement is not None:
        return
    if ctx.user_id is not None and ctx.user_id == latest.submitted_by:
        raise GuardRefused(
            f"response {latest.number} to risk {ctx.row.id} was sent by this account: someone else judges it"
        )
    latest.judgement, latest.judged_by, latest.judged_at = judgement, ctx.user_id, ctx.now
    ctx.session.add(latest)
    ctx.params = {**ctx.params, "response_number": latest.number}


def response_inadequate(ctx: Context) -> Effects:
    row: Risk = ctx.row
    row.inadequate_responses += 1
    _judge(ctx, "inadequate")
    if ctx.dest == S.ESCALATED:
        return Effects(letters=_escalation(row))
    return Effects(
        letters=[Letter("inadequate_response", to=TRUST, cc=("accountable-officer", "commissioning-lead", *NETWORK))],
        deadlines=[_response(ctx, "further_response", ctx.policy.further_response_working_days)],
    )


def response_adequate(ctx: Context) -> Effects:
    _judge(ctx, "adequate")
    return Effects(
        letters=[Letter("response_accepted", to=("service-lead",), cc=("chief-executive",))],
        deadlines=[_review(ctx)],
    )


def record_progress(ctx: Context) -> Effects:
    return Effects(close=[CloseDeadline("monitoring_review")], deadlines=[_review(ctx)])


def rescore(ctx: Context) -> Effects:
    row: Risk = ctx.row
    before = score(row) or 0
    row.impact, row.likelihood = check_score(ctx.params.get("impact"), ctx.params.get("likelihood"))
    if row.impact is None:
        raise InvalidInput("rescore needs impact=1-6 and likelihood=1-6")
    if row.level in RESPONSE_WORKING_DAYS and before <= ctx.policy.asct_threshold < (score(row) or 0):
        return Effects(letters=[ASCT])
    return Effects()


def regrade(ctx: Context) -> Effects:
    """IR <-> SC (e.g. on appeal): an open response deadline moves to the new level's length."""
    row: Risk = ctx.row
    row.level = check_regrade(row, str(ctx.params.get("level") or "").upper())
    if row.formal_notification_on is None:
        return Effects()
    due = ctx.calendar.add_working_days(row.formal_notification_on, RESPONSE_WORKING_DAYS[row.level])
    remind = ctx.calendar.subtract_working_days(due, ctx.policy.reminder_working_days)
    return Effects(move=[MoveDeadline("response", due, remind)])


def report_to_national(ctx: Context) -> Effects:
    return Effects(letters=[Letter("national_report", to=("national-medical-lead",), cc=NETWORK)])


def close(ctx: Context) -> Effects:
    ctx.row.closed_reason = ctx.note
    return Effects()


def withdraw(ctx: Context) -> Effects:
    ctx.row.closed_reason = ctx.note
    return Effects(letters=[Letter("withdrawal", to=("service-lead",), cc=("chief-executive",))])


ACTIONS = {
    "raise": raise_risk,
    "send_formal_notification": send_formal_notification,
    "no_response": no_response,
    "still_no_response": still_no_response,
    "submit_response": submit_response,
    "response_inadequate": response_inadequate,
    "response_adequate": response_adequate,
    "record_progress": record_progress,
    "rescore": rescore,
    "regrade": regrade,
    "report_to_national": report_to_national,
    "close": close,
    "withdraw": withdraw,
}


def letter_context(session: Session, row: Risk) -> dict[str, Any]:
    return {
        "item": {
            "ref": f"{row.level}-{row.id}",
            "id": row.id,
            "level": row.level,
            "level_name": LEVELS[row.level],
            "title": row.title,
            "standard_ref": row.standard_ref,
            "identified_on": row.identified_on,
            "visit_date": row.visit_date,
            "formal_notification_on": row.formal_notification_on,
            "impact": row.impact,
            "likelihood": row.likelihood,
            "score": score(row),
            "doctors_in_training": row.doctors_in_training,
            "response_working_days": RESPONSE_WORKING_DAYS.get(row.level),
            "inadequate_responses": row.inadequate_responses,
        },
        **service_context(session, row),
    }


SPEC = KindSpec(
    name="risk",
    model=Risk,
    states=RiskState,
    initial=RiskState.NEW,
    transitions=TRANSITIONS,
    guards={"is_ir_or_sc": is_ir_or_sc, "is_gc": is_gc, "has_inadequate_response": has_inadequate_response},
    actions=ACTIONS,
    deadline_rules=DEADLINE_RULES,
    terminal=frozenset({S.CLOSED.value, S.WITHDRAWN.value}),
    nation_of=nation_of,
    letter_context=letter_context,
    recipient_scope=recipient_scope,
    next_step={k.value: v for k, v in NEXT_STEP.items()},
    describe="Immediate risks, serious concerns and general concerns (000 s6); the Trust's formal responses (issue 16)",
)
