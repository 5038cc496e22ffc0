"""Appeals against a published report (seed 000 s8.1).

Only the Trust's Chief Executive may appeal, within 4 weeks of the report's publication, and
only against an immediate risk or serious concern concluded in that report, or compliance
judged unsatisfactory. A refused submission stores nothing but a record of the refused
attempt (and the refusal letter to the appellant). A ``submitted`` appeal is considered first
by the Network Manager and the Regional Network Lead (``initial_consideration``), who may
convene a subgroup (``subgroup_convened``): nobody with prior involvement in the review may
sit on it. The decision (``decided``: upheld, partly upheld, not upheld) is final: only its
communication follows (``communicated``). An upheld or partly upheld appeal withdraws or
re-grades the risks it names and re-issues the report, each change through the engine and
linked to the appeal. The result is due 8 weeks after submission, chased before and on the date.
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select

from models.accounts import User
from models.tables import AccuracyItem, Appeal, AuditEvent, Contact, PanelMember, Report, Reviewer, Risk
from models.types import is_row_id
from states.clock import local_date
from states.errors import GuardRefused, InvalidInput, NotFound
from states.machines.spec import Context, DeadlineRule, Effects, FollowOn, KindSpec, Letter, NewDeadline
from states.roles import CONTACT_ROLES, NETWORK_LEADS, SYSTEM
from states.scope import nation_of, recipient_scope, service_context, service_of

APPEAL_WINDOW = timedelta(weeks=4)  # 000 s8.1: within 4 weeks of the report's publication
RESULT_WEEKS = 8  # 000 s8.1: result made known within 8 weeks of submission where possible
OUTCOMES = ("upheld", "partly_upheld", "not_upheld")


class AppealState(StrEnum):
    NEW = "new"
    SUBMITTED = "submitted"
    INITIAL_CONSIDERATION = "initial_consideration"
    SUBGROUP_CONVENED = "subgroup_convened"
    DECIDED = "decided"
    COMMUNICATED = "communicated"


A = AppealState
LEADS = sorted(NETWORK_LEADS)
CONSIDERING = [A.INITIAL_CONSIDERATION, A.SUBGROUP_CONVENED]
TRANSITIONS: list[dict[str, Any]] = [
    {
        "trigger": "submit",
        "source": A.NEW,
        "dest": A.SUBMITTED,
        # the network office on the Trust's behalf, or the Chief Executive in the portal (issue 16)
        "roles": ["network-office", *LEADS, "operator", "chief-executive"],
        "conditions": ["is_from_chief_executive", "is_within_window", "has_valid_grounds"],
    },
    {"trigger": "begin_consideration", "source": A.SUBMITTED, "dest": A.INITIAL_CONSIDERATION, "roles": LEADS},
    {"trigger": "add_subgroup_member", "source": CONSIDERING, "dest": None, "roles": LEADS},
    {
        "trigger": "convene_subgroup",
        "source": A.INITIAL_CONSIDERATION,
        "dest": A.SUBGROUP_CONVENED,
        "roles": LEADS,
        "conditions": ["has_subgroup"],
    },
    {
        "trigger": "decide",
        "source": CONSIDERING,
        "dest": A.DECIDED,
        "roles": LEADS,
        "note_required": True,
        "four_eyes": True,
    },
    {"trigger": "communicate", "source": A.DECIDED, "dest": A.COMMUNICATED, "roles": [*LEADS, "network-office"]},
]

NETWORK = ("network-manager", "regional-lead")
DEADLINE_RULES = {
    "appeal_result": DeadlineRule(
        owner="network-manager",
        step="decide the appeal and make the result known",
        reminder=Letter("appeal_result_due", to=NETWORK, category="reminder"),
        due_today=Letter("appeal_result_due", to=NETWORK, category="reminder", key="today"),
        overdue=Letter("appeal_result_overdue", to=NETWORK, category="chase"),
        runs_through=frozenset({A.INITIAL_CONSIDERATION.value, A.SUBGROUP_CONVENED.value}),
    ),
}
NEXT_STEP = {
    A.SUBMITTED: "Network Manager and Regional Lead: begin the initial consideration",
    A.INITIAL_CONSIDERATION: "Network Manager and Regional Lead: decide, or convene a subgroup with no prior involvement",
    A.SUBGROUP_CONVENED: "Subgroup: examine methodology, process and the evidence, then decide",
    A.DECIDED: "Network: communicate the decision (it is final)",
}


def _report(session: Session, row: Appeal) -> Report:
    report = session.get(Report, row.report_id)
    if report is None:
        raise NotFound(f"report {row.report_id} not found")
    return report


# Guards (pure).
def is_from_chief_executive(ctx: Context) -> bool:
    return _appellant_problem(ctx.session, ctx.row) is None


def is_within_window(ctx: Context) -> bool:
    return _window_problem(ctx.session, ctx.row) is None


def has_valid_grounds(ctx: Context) -> bool:
    return _grounds_problem(ctx.session, ctx.row) is None


def has_subgroup(ctx: Context) -> bool:
    return bool(ctx.row.subgroup)


# Validators: refuse with a reason (None: nothing to refuse).
def submission_problem(session: Session, row: Appeal) -> str | None:
    """Why this appeal may not be submitted: not the Chief Executive, outside the window, or no valid grounds."""
    if session.get(Contact, row.appellant_contact_id) is None:
        return None  # the engine names the missing contact through the guard
    return _appellant_problem(session, row) or _window_problem(session, row) or _grounds_problem(session, row)


def _appellant_problem(session: Session, row: Appeal) -> str | None:
    person = session.get(Contact, row.appellant_contact_id)
    _, org, _ = service_of(session, row.service_id)
    if person is None:
        return f"contact {row.appellant_contact_id} not found"
    if person.role != "chief-executive" or person.organisation_id != org.id:
        return (
            f"an appeal must be submitted by the Chief Executive of {org.name}; "
            f"{person.name} is {CONTACT_ROLES.get(person.role, person.role)}"
        )
    return None


def _window_problem(session: Session, row: Appeal) -> str | None:
    report = _report(session, row)
    if report.published_on is None:
        return f"report {report.id} is not published ({report.state}): there is nothing to appeal yet"
    last = report.published_on + APPEAL_WINDOW
    if row.submitted_on > last:
        return (
            f"submitted {row.submitted_on:%a %d %b %Y}: the window closed on {last:%a %d %b %Y}, "
            f"4 weeks after publication on {report.published_on:%a %d %b %Y}"
        )
    if row.submitted_on < report.published_on:
        return f"submitted {row.submitted_on:%a %d %b %Y}, before publication on {report.published_on:%a %d %b %Y}"
    return None


def _grounds_problem(session: Session, row: Appeal) -> str | None:
    report = _report(session, row)
    if not row.grounds:
        return "no grounds given: an appeal must name an IR or SC, or the compliance judgement"
    for g in row.grounds:
        if "risk_id" in g:
            rid = int(g["risk_id"])
            risk = session.get(Risk, rid) if is_row_id(rid) else None
            if risk is None or report.visit_id is None or risk.visit_id != report.visit_id:
                return f"risk {g['risk_id']} is not a conclusion of report {report.id}"
            if risk.level not in ("IR", "SC"):
                return f"{risk.level}-{risk.id} is a general concern: only an IR or SC conclusion can be appealed"
        elif g.get("compliance"):
            if not any(c["status"] in ("Unmet", "Partially Met") for c in report.compliance):
                return f"report {report.id} judged no standard unmet or partially met: compliance was not found unsatisfactory"
        else:
            return f"ground {g!r}: use risk_id=N or compliance"
    return None


def window_closes(report: Report) -> date | None:
    """The last day an appeal against ``report`` may be submitted (None: not published)."""
    return report.published_on + APPEAL_WINDOW if report.published_on is not None else None


def appealable(session: Session, report: Report) -> list[dict[str, Any]]:
    """The conclusions of ``report`` an appeal may name (the grounds ``has_valid_grounds``
    accepts): each IR and SC found at its visit, and the compliance judgement when a standard
    was found unmet or partially met. Each: ``key`` (as a form sends it), ``ground``, ``label``."""
    out: list[dict[str, Any]] = []
    if report.visit_id is not None:
        for r in session.exec(
            select(Risk)
            .where(Risk.visit_id == report.visit_id, col(Risk.level).in_(("IR", "SC")))
            .order_by(col(Risk.id))
        ):
            out.append({"key": f"risk-{r.id}", "ground": {"risk_id": r.id}, "label": f"{r.level}-{r.id}: {r.title}"})
    unsatisfied = [c for c in report.compliance if c["status"] in ("Unmet", "Partially Met")]
    if unsatisfied:
        refs = ", ".join(f"{c['ref']} ({c['status']})" for c in unsatisfied)
        out.append({"key": "compliance", "ground": {"compliance": True}, "label": f"The compliance judgement: {refs}"})
    return out


def _key(text: str) -> str:
    """A name or email as compared: spaces collapsed, case folded ("Jo  Smith" is "jo smith")."""
    return " ".join(text.split()).casefold()


def involvement(session: Session, report: Report) -> dict[str | int, str]:
    """Everyone with prior involvement in the review -> how: by name or email (``_key``), and by
    the account (user id) of everyone who acted on the report, its visit or its risks."""
    seen: dict[str | int, str] = {}
    if report.visit_id:
        for _m, r in session.exec(
            select(PanelMember, Reviewer).join(Reviewer).where(PanelMember.visit_id == report.visit_id)
        ):
            seen.setdefault(_key(r.name), "sat on the review panel")
            seen.setdefault(_key(r.email), "sat on the review panel")
    risk_ids = list(session.exec(select(Risk.id).where(Risk.visit_id == report.visit_id))) if report.visit_id else []
    items: list[tuple[str, list[Any]]] = [
        ("report", [report.id]),
        ("visit", [report.visit_id] if report.visit_id else []),
        ("risk", risk_ids),
    ]
    for kind, ids in items:
        if not ids:
            continue
        for e in session.exec(select(AuditEvent).where(AuditEvent.kind == kind, col(AuditEvent.item_id).in_(ids))):
            if e.role != SYSTEM:
                how = f"acted on the {kind} ({e.trigger} on {local_date(e.at):%d %b %Y})"
                seen.setdefault(_key(e.actor), how)
                if e.user_id is not None:
                    seen.setdefault(e.user_id, how)
    for i in session.exec(select(AccuracyItem).where(AccuracyItem.report_id == report.id)):
        for who, uid in ((i.manager_actor, i.manager_user_id), (i.lead_actor, i.lead_user_id)):
            if who:
                seen.setdefault(_key(who), "decided factual accuracy items on the report")
            if uid is not None:
                seen.setdefault(uid, "decided factual accuracy items on the report")
    return seen


def _account_of(session: Session, email: str) -> int | None:
    """The peerwatch account with this email, if any (accounts store emails lower-cased)."""
    return session.exec(select(User.id).where(User.email == email.strip().lower())).first()


# Actions: one per trigger; each may set the appeal's own fields and returns the rest as data.
def submit(ctx: Context) -> Effects:
    """The result is due 8 weeks after submission, reminded before; the appellant is acknowledged."""
    row: Appeal = ctx.row
    due = ctx.calendar.add_weeks(row.submitted_on, RESULT_WEEKS)
    remind = ctx.calendar.subtract_working_days(due, ctx.policy.reminder_working_days)
    return Effects(
        deadlines=[NewDeadline("appeal_result", due, remind)],
        letters=[Letter("appeal_acknowledgement", to=("chief-executive",), cc=NETWORK)],
    )


def _subgroup_member(ctx: Context) -> tuple[str, str]:
    """Validator: the member's name and email, refused if they had any prior involvement in the review."""
    row: Appeal = ctx.row
    name, email = str(ctx.params.get("name") or "").strip(), str(ctx.params.get("email") or "").strip()
    if not name or "@" not in email:
        raise InvalidInput("add_subgroup_member needs name=... and email=...")
    seen = involvement(ctx.session, _report(ctx.session, row))
    account = _account_of(ctx.session, email)
    why = seen.get(_key(name)) or seen.get(_key(email)) or (seen.get(account) if account is not None else None)
    if why:
        raise GuardRefused(f"{name} may not sit on the appeal subgroup: prior involvement in the review ({why})")
    if any(m["email"].lower() == email.lower() for m in row.subgroup):
        raise GuardRefused(f"{name} is already on the subgroup")
    return name, email


def add_subgroup_member(ctx: Context) -> Effects:
    """A member with no prior involvement joins the subgroup and is invited."""
    name, email = _subgroup_member(ctx)
    ctx.row.subgroup = [*ctx.row.subgroup, {"name": name, "email": email}]
    return Effects(
        letters=[Letter("subgroup_invitation", to=(), cc=NETWORK, people=((name, email),), key=email.lower())]
    )


def decide(ctx: Context) -> Effects:
    """The final decision; upheld or partly upheld withdraws or re-grades the risks it names and
    re-issues the report, each a follow-on through the engine linked to the appeal."""
    row: Appeal = ctx.row
    outcome = str(ctx.params.get("outcome") or "")
    if outcome not in OUTCOMES:
        raise InvalidInput(f"decide needs outcome= one of {', '.join(OUTCOMES)}")
    withdraw = [int(x) for x in _list(ctx.params.get("withdraw"))]
    regrade = {int(k): str(v).upper() for k, v in (_pairs(ctx.params.get("regrade")))}
    if outcome == "not_upheld" and (withdraw or regrade):
        raise InvalidInput("an appeal not upheld changes nothing: drop withdraw/regrade")
    report = _report(ctx.session, row)
    for rid in [*withdraw, *regrade]:
        risk = ctx.session.get(Risk, rid) if is_row_id(rid) else None
        if risk is None or risk.visit_id != report.visit_id:
            raise InvalidInput(f"risk {rid} is not a conclusion of report {report.id}")
    row.outcome, row.decision, row.decided_on = outcome, ctx.note, ctx.today
    if outcome == "not_upheld":
        return Effects()
    link = {"appeal_id": row.id}
    note = f"appeal {row.id} {row.outcome}: {ctx.note}"
    return Effects(
        follow_on=[
            *(FollowOn("risk", "withdraw", item_id=rid, note=note, params=link) for rid in withdraw),
            *(
                FollowOn("risk", "regrade", item_id=rid, note=note, params={**link, "level": level})
                for rid, level in regrade.items()
            ),
            FollowOn("report", "reopen_for_amendment", item_id=row.report_id, note=note, params=link),
            FollowOn("report", "reissue", item_id=row.report_id, note=note, params=link),
        ]
    )


def communicate(ctx: Context) -> Effects:
    return Effects(letters=[Letter("appeal_decision", to=("chief-executive",), cc=(*NETWORK, "service-lead"))])


ACTIONS = {
    "submit": submit,
    "add_subgroup_member": add_subgroup_member,
    "decide": decide,
    "communicate": communicate,
}


def _list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [v for v in str(value).replace(";", ",").split(",") if v.strip()]


def _pairs(value: Any) -> list[tuple[str, str]]:
    """regrade as {"5": "SC"} or "5=SC,6=IR"."""
    if isinstance(value, dict):
        return [(str(k), str(v)) for k, v in value.items()]
    out = []
    for part in _list(value):
        k, sep, v = str(part).partition("=")
        if not sep:
            raise InvalidInput(f"regrade {part!r}: use RISK_ID=IR|SC")
        out.append((k.strip(), v.strip()))
    return out


def letter_context(session: Session, row: Appeal) -> dict[str, Any]:
    report = _report(session, row)
    return {
        "item": {
            "ref": f"Appeal-{row.id}",
            "id": row.id,
            "title": f"Appeal against report {report.id}",
            "submitted_on": row.submitted_on,
            "outcome": (row.outcome or "").replace("_", " ") or None,
            "decision": row.decision,
            "report_id": report.id,
            "published_on": report.published_on,
            "statement": row.statement,
        },
        **service_context(session, row),
    }


SPEC = KindSpec(
    name="appeal",
    model=Appeal,
    states=AppealState,
    initial=AppealState.NEW,
    transitions=TRANSITIONS,
    guards={
        "is_from_chief_executive": is_from_chief_executive,
        "is_within_window": is_within_window,
        "has_valid_grounds": has_valid_grounds,
        "has_subgroup": has_subgroup,
    },
    actions=ACTIONS,
    deadline_rules=DEADLINE_RULES,
    terminal=frozenset({A.COMMUNICATED.value}),
    nation_of=nation_of,
    letter_context=letter_context,
    recipient_scope=recipient_scope,
    next_step={k.value: v for k, v in NEXT_STEP.items()},
    describe="Appeals against a published report (000 s8.1)",
)
