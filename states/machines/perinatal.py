"""Perinatal quality surveillance: the escalation ladder for a maternity or neonatal concern (seed 004).

A concern about a maternity or neonatal service is ``raise``d at the ``provider`` level, where
the trust board, its perinatal safety champions and triumvirate own it (Principles 1 and 5).
It may be ``escalate``d one level at a time: ``lms_ics`` (the local maternity system within the
integrated care system, through the local quality surveillance group), ``regional`` (the
regional quality committee, which may also ``refer_to_jsog`` or ``request_cqc_inspection``,
unannounced) and ``national`` (the Maternity Safety Surveillance and Concerns Group, MSSCG,
which oversees entry into the Maternity Safety Support Programme: ``states/machines/mssp.py``). It may be
``deescalate``d one level at a time, and ``close``d at any level, each with a reason. Every
letter names the actions the seed lists for the level that now holds the concern.

Escalation beyond the provider is a decision of the RECEIVING forum, recorded as such
(DOMAIN.md "Perinatal quality surveillance"; 004 Principles 2-4): the LMS/ICS local quality
surveillance group takes a concern to ``lms_ics``; the regional quality committee, with the
regional chief nurse, to ``regional`` (and agrees any further action there: ``refer_to_jsog``,
``request_cqc_inspection``); the MSSCG to ``national``. The network office records what the
forum decided (which forum, the decision, the date it decided, who agreed with it at
regional level, who recorded it: ``forum_decisions``); it does not decide for it. A forum's
decision that moves nothing (e.g. not to escalate) is recorded with ``record_forum_decision``.

The trust board reviews maternity and neonatal safety monthly (Principle 1, requirement 2):
each open concern carries a ``board_review`` deadline on the last working day of the month;
the sweep reminds the Service Lead and Chief Executive, ``record_board_review`` (internal)
opens next month's, and a month that passes unrecorded fires ``board_review_missed``: a chase
letter, and next month's deadline.

The level NAMES are configuration, because later guidance renames them (LMS/ICS became
LMNS/ICB): ``PEERWATCH_PERINATAL_LEVELS`` and ``PEERWATCH_PERINATAL_FORUMS`` (JSON, or a path
to a JSON file) override the display names used in letters, ``show`` and the diagram labels.
The state keys (provider, lms_ics, regional, national) never change.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any

from sqlmodel import Session

from models.perinatal import PerinatalConcern
from models.tables import Deadline, DeadlineStatus, Service
from states.calendar import WorkingCalendar
from states.clock import parse_date
from states.errors import InvalidInput
from states.machines.perinatal_policy import ACTIONS, PerinatalPolicy
from states.machines.spec import CloseDeadline, Context, DeadlineRule, Effects, KindSpec, Letter, NewDeadline
from states.roles import NETWORK_LEADS, STAFF, SYSTEM
from states.scope import nation_of, recipient_scope, service_context


class PerinatalState(StrEnum):
    NEW = "new"
    PROVIDER = "provider"
    LMS_ICS = "lms_ics"
    REGIONAL = "regional"
    NATIONAL = "national"
    CLOSED = "closed"


S = PerinatalState
LEVELS = (S.PROVIDER.value, S.LMS_ICS.value, S.REGIONAL.value, S.NATIONAL.value)

# Who is written to when the concern arrives at each level (contact roles; see docs/perinatal.md).
TRUST = ("service-lead", "chief-executive")
REGIONAL_TEAM = ("regional-chief-nurse", "regional-chief-midwife", "regional-lead-obstetrician")
ADDRESSEES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "provider": (TRUST, ("medical-director", "lms-lead", "regional-chief-midwife")),
    "lms_ics": (
        ("lms-lead", "regional-chief-midwife", "chief-executive"),
        ("service-lead", "icb", "regional-lead-obstetrician"),
    ),
    "regional": (REGIONAL_TEAM, ("chief-executive", "lms-lead", "regional-quality-lead")),
    "national": (("msscg",), (*REGIONAL_TEAM, "chief-executive", "national-medical-lead")),
}
# Contact roles this kind writes to that states/roles.py CONTACT_ROLES does not (yet) name.
PERINATAL_CONTACT_ROLES = {
    "lms-lead": "Local Maternity System lead",
    "regional-chief-midwife": "Regional Chief Midwife",
    "regional-lead-obstetrician": "Regional Lead Obstetrician",
    "regional-chief-nurse": "Regional Chief Nurse",
    "msscg": "Maternity Safety Surveillance and Concerns Group",
    "jsog": "Joint Strategic Oversight Group",
}
REFERRALS = {"refer_to_jsog": ("jsog", ("jsog",)), "request_cqc_inspection": ("cqc_inspection", ("cqc",))}
# Which level's forum decides a transition (DOMAIN.md: the receiving forum; at regional level the
# regional quality committee, with the regional chief nurse, agrees any further action).
DECIDING_FORUM = {
    "escalate": None,
    "refer_to_jsog": "regional",
    "request_cqc_inspection": "regional",
}  # None: the destination
# Who must have agreed a decision of that level's forum, named in the record (decision param ``agreed_with``).
AGREED_WITH = {"regional": "the regional chief nurse"}
DECISIONS = {
    "refer_to_jsog": "refer to the Joint Strategic Oversight Group (JSOG)",
    "request_cqc_inspection": "request an unannounced CQC inspection",
}

# ------------------------------------------------------------------ the machine

STAFF_ROLES = sorted(STAFF)
LEADS = sorted(NETWORK_LEADS)
OPEN = list(LEVELS)
TRANSITIONS: list[dict[str, Any]] = [
    {
        "trigger": "raise",
        "source": S.NEW,
        "dest": S.PROVIDER,
        "conditions": ["is_perinatal_service"],
        "roles": STAFF_ROLES,
    },
    {"trigger": "escalate", "source": S.PROVIDER, "dest": S.LMS_ICS, "roles": STAFF_ROLES, "note_required": True},
    {"trigger": "escalate", "source": S.LMS_ICS, "dest": S.REGIONAL, "roles": STAFF_ROLES, "note_required": True},
    {"trigger": "escalate", "source": S.REGIONAL, "dest": S.NATIONAL, "roles": STAFF_ROLES, "note_required": True},
    {"trigger": "deescalate", "source": S.LMS_ICS, "dest": S.PROVIDER, "roles": STAFF_ROLES, "note_required": True},
    {"trigger": "deescalate", "source": S.REGIONAL, "dest": S.LMS_ICS, "roles": STAFF_ROLES, "note_required": True},
    {"trigger": "deescalate", "source": S.NATIONAL, "dest": S.REGIONAL, "roles": STAFF_ROLES, "note_required": True},
    {"trigger": "refer_to_jsog", "source": S.REGIONAL, "dest": None, "roles": STAFF_ROLES, "note_required": True},
    {
        "trigger": "request_cqc_inspection",
        "source": S.REGIONAL,
        "dest": None,
        "roles": STAFF_ROLES,
        "note_required": True,
    },
    {"trigger": "record_forum_decision", "source": OPEN, "dest": None, "roles": STAFF_ROLES},
    {"trigger": "record_board_review", "source": OPEN, "dest": None, "roles": STAFF_ROLES},
    {
        "trigger": "board_review_missed",
        "source": OPEN,
        "dest": None,
        "conditions": ["has_board_review_overdue"],
        "roles": [SYSTEM, *LEADS],
    },
    {"trigger": "close", "source": OPEN, "dest": S.CLOSED, "roles": LEADS, "note_required": True},
]

BOARD_REVIEW_DUE = Letter("perinatal_board_review_due", to=TRUST, category="reminder")
BOARD_REVIEW_MISSED = Letter(
    "perinatal_board_review_overdue", to=("chief-executive", "service-lead"), cc=("lms-lead",), category="chase"
)
DEADLINE_RULES = {
    "board_review": DeadlineRule(
        owner="chief-executive",
        step="the trust board reviews maternity and neonatal safety for the month; record it with record_board_review",
        on_due="board_review_missed",
        reminder=BOARD_REVIEW_DUE,
    ),
}


class _NextStep(dict[str, str]):
    """Next steps that name the levels as configured at the moment they are read."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key).format(**PerinatalPolicy.from_env().names())

    def get(self, key: str, default: Any = None) -> Any:
        # not dict.get: it would bypass __getitem__, which formats the configured names
        return self[key] if key in self else default  # noqa: SIM401

    def items(self) -> Any:
        return [(k, self[k]) for k in self]

    def values(self) -> Any:
        return [self[k] for k in self]


NEXT_STEP = _NextStep(
    {
        S.PROVIDER.value: "{provider} ({provider_forum}): agree an action plan as a priority, share it with the LMS lead and "
        "regional chief midwife, review maternity and neonatal safety monthly; escalate to {lms_ics} if needed",
        S.LMS_ICS.value: "{lms_ics} ({lms_ics_forum}): appreciative enquiry and support to the board safety champion and "
        "perinatal triumvirate on the action plan; escalate to {regional} or de-escalate to {provider}",
        S.REGIONAL.value: "{regional} ({regional_forum}): agree additional action or support (regional QI team, JSOG, unannounced "
        "CQC inspection); escalate to {national} or de-escalate to {lms_ics}",
        S.NATIONAL.value: "{national} ({national_forum}): agree additional action or support and, if the criteria are met, entry "
        "into the Maternity Safety Support Programme; de-escalate to {regional} or close",
    }
)


# Guards: pure predicates on the context.
def is_perinatal_service(ctx: Context) -> bool:
    svc = ctx.session.get(Service, ctx.row.service_id)
    kinds = PerinatalPolicy.from_env().service_kinds
    return svc is not None and any(k in svc.kind.lower() for k in kinds)


def has_board_review_overdue(ctx: Context) -> bool:
    return any(d.due_on < ctx.today for d in _board_review_deadlines(ctx))


# ------------------------------------------------------------------ board review dates (from the calendar)


def _first_of_next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def last_working_day_of_month(calendar: WorkingCalendar, day: date) -> date:
    """The last working day of ``day``'s month: the board review is due by then."""
    return calendar.subtract_working_days(_first_of_next_month(day), 1)


def board_review_due(calendar: WorkingCalendar, month_of: date, today: date) -> date:
    """The review deadline for ``month_of``'s month, or the first month whose deadline is not past."""
    due = last_working_day_of_month(calendar, month_of)
    while due < today:
        due = last_working_day_of_month(calendar, _first_of_next_month(due))
    return due


def _board_review(ctx: Context, month_of: date) -> NewDeadline:
    due = board_review_due(ctx.calendar, month_of, ctx.today)
    days = PerinatalPolicy.from_env().board_review_reminder_working_days
    return NewDeadline("board_review", due, ctx.calendar.subtract_working_days(due, days))


def _board_review_deadlines(ctx: Context) -> list[Deadline]:
    return ctx.deadlines("board_review")


# ------------------------------------------------------------------ validators and actions


def _history(ctx: Context, level: str) -> None:
    row: PerinatalConcern = ctx.row
    names = PerinatalPolicy.from_env().levels
    entry = {
        "level": level,
        "name": names.get(level, level),
        "on": ctx.today.isoformat(),
        "by": ctx.actor,
        "trigger": ctx.trigger,
        "note": ctx.note,
    }
    row.level_history = [*row.level_history, entry]


def _arrival(level: str, raised: bool, reason: str | None, decision: dict[str, Any] | None = None) -> Letter:
    to, cc = ADDRESSEES[level]
    return Letter(
        "perinatal_escalation",
        to=to,
        cc=cc,
        context=(("level_key", level), ("raised", raised), ("reason", reason or ""), ("decision", decision)),
    )


def _forum_decision(ctx: Context, level: str, decision: str) -> dict[str, Any]:
    """What ``level``'s forum decided, as the network office records it; appended to the row.

    Needs the date the forum decided (``decided_on``) and, where the seed names someone whose
    agreement the forum's decision needs (the regional chief nurse), who that was (``agreed_with``)."""
    row: PerinatalConcern = ctx.row
    pol = PerinatalPolicy.from_env()
    forum = pol.forums[level]
    raw = ctx.params.get("decided_on")
    if not raw:
        raise InvalidInput(
            f"{ctx.trigger!r}: the {forum} decides this, not the network office: give the date it decided "
            f"(decided_on, e.g. --param decided_on=YYYY-MM-DD)"
        )
    decided_on = parse_date(str(raw), "decided_on date")
    if decided_on > ctx.today:
        raise InvalidInput(f"decided_on {decided_on.isoformat()} is after today ({ctx.today.isoformat()})")
    if decided_on < row.raised_on:
        raise InvalidInput(
            f"decided_on {decided_on.isoformat()} is before the concern was raised ({row.raised_on.isoformat()})"
        )
    agreed = str(ctx.params.get("agreed_with") or "").strip()
    if level in AGREED_WITH and not agreed:
        raise InvalidInput(f"{ctx.trigger!r}: the {forum} decides with {AGREED_WITH[level]}: name them (agreed_with)")
    entry = {
        "level": level,
        "forum": forum,
        "decision": decision,
        "decided_on": decided_on.isoformat(),
        "agreed_with": agreed or None,
        "recorded_by": ctx.actor,
        "recorded_role": ctx.role,
        "recorded_on": ctx.today.isoformat(),
        "note": ctx.note,
    }
    row.forum_decisions = [*row.forum_decisions, entry]
    return entry


def _deescalation(source: str, dest: str, reason: str | None) -> Letter:
    left_to, _ = ADDRESSEES[source]
    now_to, _ = ADDRESSEES[dest]
    cc = tuple(dict.fromkeys(r for r in (*left_to, *now_to) if r not in TRUST))
    return Letter(
        "perinatal_deescalation",
        to=TRUST,
        cc=cc,
        context=(("level_key", dest), ("from_level_key", source), ("reason", reason or "")),
    )


def check_raise(ctx: Context) -> None:
    row: PerinatalConcern = ctx.row
    if not row.title or not row.title.strip():
        raise InvalidInput("a perinatal concern needs a title: what is the concern?")
    if row.raised_on > ctx.today:
        raise InvalidInput(f"raised on {row.raised_on.isoformat()} is after today ({ctx.today.isoformat()})")


# Actions: one per trigger; each may set the row's own fields and returns the rest as data.
def raise_concern(ctx: Context) -> Effects:
    check_raise(ctx)
    _history(ctx, ctx.dest)
    return Effects(letters=[_arrival(ctx.dest, True, ctx.note)], deadlines=[_board_review(ctx, ctx.today)])


def escalate(ctx: Context) -> Effects:
    names = PerinatalPolicy.from_env().levels
    decision = _forum_decision(ctx, ctx.dest, f"escalate to {names.get(ctx.dest, ctx.dest)} level")
    _history(ctx, ctx.dest)
    return Effects(letters=[_arrival(ctx.dest, False, ctx.note, decision)], deadlines=_carried_board_review(ctx))


def deescalate(ctx: Context) -> Effects:
    _history(ctx, ctx.dest)
    return Effects(
        letters=[_deescalation(ctx.source, ctx.dest, ctx.note)],
        deadlines=_carried_board_review(ctx),
    )


def refer(ctx: Context) -> Effects:
    """``refer_to_jsog`` and ``request_cqc_inspection``: the regional forum's further action."""
    row: PerinatalConcern = ctx.row
    to_key, roles = REFERRALS[ctx.trigger]
    decision = _forum_decision(ctx, DECIDING_FORUM[ctx.trigger] or ctx.source, DECISIONS[ctx.trigger])
    row.referrals = [
        *row.referrals,
        {
            "to": to_key,
            "on": decision["decided_on"],
            "by": decision["forum"],
            "recorded_by": ctx.actor,
            "note": ctx.note,
        },
    ]
    letter = Letter(
        "perinatal_regional_referral",
        to=roles,
        cc=(*REGIONAL_TEAM, "chief-executive"),
        context=(("referral", to_key), ("reason", ctx.note or ""), ("decision", decision)),
    )
    return Effects(letters=[letter])


def record_forum_decision(ctx: Context) -> Effects:
    level = str(ctx.params.get("forum") or "").strip()
    if level not in LEVELS or level == "provider":
        raise InvalidInput(
            f"record_forum_decision: forum {ctx.params.get('forum')!r}: name the level whose forum decided, "
            f"one of {', '.join(LEVELS[1:])}"
        )
    text = str(ctx.params.get("decision") or "").strip()
    if not text:
        raise InvalidInput("record_forum_decision: give what the forum decided (decision)")
    _forum_decision(ctx, level, text)
    return Effects()


def record_board_review(ctx: Context) -> Effects:
    """The month of the review is done: close its deadline and open the next month's.

    A late review of an earlier month (already chased as missed) leaves the open deadline alone.
    """
    row: PerinatalConcern = ctx.row
    raw = ctx.params.get("reviewed_on")
    reviewed = parse_date(str(raw), "reviewed_on date") if raw else ctx.today
    if reviewed > ctx.today:
        raise InvalidInput(f"reviewed_on {reviewed.isoformat()} is after today ({ctx.today.isoformat()})")
    if reviewed < row.raised_on:
        raise InvalidInput(
            f"reviewed_on {reviewed.isoformat()} is before the concern was raised ({row.raised_on.isoformat()})"
        )
    row.last_board_review_on = max(reviewed, row.last_board_review_on or reviewed)
    row.board_reviews += 1
    next_month = _first_of_next_month(reviewed)
    pending = _board_review_deadlines(ctx)
    covered = [d for d in pending if d.due_on < next_month]  # due in the reviewed month or before
    if covered:
        return Effects(
            close=[CloseDeadline("board_review", DeadlineStatus.CLOSED, due_before=next_month)],
            deadlines=[_board_review(ctx, next_month)],
        )
    if not pending:
        return Effects(deadlines=[_board_review(ctx, next_month)])
    return Effects()


def board_review_missed(ctx: Context) -> Effects:
    """The passed months are chased (their deadlines fired) and next month's review is opened,
    unless a later one is already open."""
    pending = _board_review_deadlines(ctx)
    passed = [d for d in pending if d.due_on < ctx.today]
    latest = max(d.due_on for d in passed)
    out = Effects(
        close=[CloseDeadline("board_review", DeadlineStatus.FIRED, due_before=ctx.today)],
        letters=[
            Letter(
                BOARD_REVIEW_MISSED.template,
                to=BOARD_REVIEW_MISSED.to,
                cc=BOARD_REVIEW_MISSED.cc,
                category=BOARD_REVIEW_MISSED.category,
                context=(("missed_due_on", latest),),
            )
        ],
    )
    if not any(d.due_on >= ctx.today for d in pending):
        out.deadlines.append(_board_review(ctx, _first_of_next_month(latest)))
    return out


def close(ctx: Context) -> Effects:
    row: PerinatalConcern = ctx.row
    row.closed_reason = ctx.note
    _history(ctx, ctx.dest)
    to, _ = ADDRESSEES[ctx.source]
    letter = Letter(
        "perinatal_closed",
        to=TRUST,
        cc=tuple(r for r in dict.fromkeys((*to, "lms-lead")) if r not in TRUST),
        context=(("from_level_key", ctx.source), ("reason", ctx.note or "")),
    )
    return Effects(letters=[letter])


def _carried_board_review(ctx: Context) -> list[NewDeadline]:
    """The engine closes a state's deadlines when it is left; the month's board review carries over."""
    return [
        NewDeadline("board_review", d.due_on, None if d.reminded else d.remind_on) for d in _board_review_deadlines(ctx)
    ]


TRIGGER_ACTIONS = {  # (ACTIONS above: the seed's actions at each level)
    "raise": raise_concern,
    "escalate": escalate,
    "deescalate": deescalate,
    "refer_to_jsog": refer,
    "request_cqc_inspection": refer,
    "record_forum_decision": record_forum_decision,
    "record_board_review": record_board_review,
    "board_review_missed": board_review_missed,
    "close": close,
}


# ------------------------------------------------------------------ letters, diagram labels


def levels_context(policy: PerinatalPolicy | None = None) -> dict[str, dict[str, Any]]:
    """Each level's configured name and forum and the seed's actions, for letters."""
    pol = policy or PerinatalPolicy.from_env()
    names = pol.names()
    return {
        k: {"key": k, "name": pol.levels[k], "forum": pol.forums[k], "actions": [a.format(**names) for a in ACTIONS[k]]}
        for k in LEVELS
    }


def letter_context(session: Session, row: PerinatalConcern) -> dict[str, Any]:
    levels = levels_context()
    return {
        "item": {
            "ref": f"PQS-{row.id}",
            "id": row.id,
            "title": row.title,
            "raised_on": row.raised_on,
            "source": row.source,
            "level": row.state,
            "level_name": levels[row.state]["name"] if row.state in levels else row.state.replace("_", " "),
            "last_board_review_on": row.last_board_review_on,
            "board_reviews": row.board_reviews,
            "history": [
                {**h, "name": levels[h["level"]]["name"] if h["level"] in levels else h["level"]}
                for h in row.level_history
            ],
            "forum_decisions": row.forum_decisions,
        },
        "levels": levels,
        **service_context(session, row),
    }


def state_labels() -> dict[str, str]:
    """Each level as the diagrams label it: its configured name and forum."""
    pol = PerinatalPolicy.from_env()
    return {k: f"{pol.levels[k]}: {pol.forums[k]}" for k in LEVELS}


SPEC = KindSpec(
    name="perinatal",
    model=PerinatalConcern,
    states=PerinatalState,
    initial=PerinatalState.NEW,
    transitions=TRANSITIONS,
    guards={"is_perinatal_service": is_perinatal_service, "has_board_review_overdue": has_board_review_overdue},
    actions=TRIGGER_ACTIONS,
    state_labels=state_labels,
    deadline_rules=DEADLINE_RULES,
    terminal=frozenset({S.CLOSED.value}),
    nation_of=nation_of,
    letter_context=letter_context,
    recipient_scope=recipient_scope,
    next_step=NEXT_STEP,
    describe="Perinatal quality surveillance: the escalation ladder provider -> lms_ics -> regional -> national (004)",
)
