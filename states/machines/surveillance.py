"""QNT surveillance decisions after the annual self-report (seed 002 s1.1.1).

Each year a service reports against its previously agreed quality indicators. The network
records the figures (``assess``): a service meeting 100% of its agreed indicators, and its
good-practice compliance threshold where one applies, needs no additional surveillance and
the item closes as ``not_required`` (the service is told). Any other service is
``decision_required``: the network proposes one or more options (``options_proposed``),
which can be combined according to risk -- option 1 routine surveillance, option 2 enhanced
surveillance with provider and/or commissioner actions, option 3 peer review -- and writes
to the provider. The options are agreed in consensus with the provider **and** the
commissioner: each agreement is recorded with who and when (``record_provider_agreement``,
``record_commissioner_agreement``), by two different people, and only then is the decision
``agreed``. Agreeing option 3 proposes a peer review visit through the engine and links it.
The service is then ``in_surveillance`` until the network ``close``s it with a reason.
Revising the options before agreement clears any agreement already recorded.

The seeds set no time for the agreement: chasing after 20 working days is local policy
(``PEERWATCH_SURVEILLANCE_AGREEMENT_WORKING_DAYS``), a default, not the SOP.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlmodel import Session, select

from models.surveillance import Surveillance
from models.tables import Visit
from states.errors import GuardRefused, InvalidInput
from states.machines.spec import (
    CloseDeadline,
    Context,
    DeadlineRule,
    Effects,
    FollowOn,
    KindSpec,
    Letter,
    NewDeadline,
)
from states.policy import numbers_from_env
from states.roles import NETWORK_LEADS, STAFF
from states.scope import nation_of, recipient_scope, service_context

OPTIONS = {  # 002 s1.1.1: the three types of additional surveillance action
    "routine": "Option 1: routine surveillance",
    "enhanced": "Option 2: enhanced surveillance (provider and/or commissioner action)",
    "peer_review": "Option 3: peer review",
}
OPTION_ALIASES = {"1": "routine", "2": "enhanced", "3": "peer_review", "peer-review": "peer_review"}
ACTION_PARTIES = ("provider", "commissioner")
PEER_REVIEW_REASON = "QNT surveillance option 3"


@dataclass(frozen=True)
class SurveillancePolicy:
    """Local policy defaults for surveillance (not the SOP); ``PEERWATCH_SURVEILLANCE_<NAME>`` overrides."""

    agreement_working_days: int = 20  # provider and commissioner agree the options, else chased

    @classmethod
    def from_env(cls) -> SurveillancePolicy:
        return cls(**numbers_from_env(cls, "PEERWATCH_SURVEILLANCE_"))


class SurveillanceState(StrEnum):
    NEW = "new"
    NOT_REQUIRED = "not_required"
    DECISION_REQUIRED = "decision_required"
    OPTIONS_PROPOSED = "options_proposed"
    AGREED = "agreed"
    IN_SURVEILLANCE = "in_surveillance"
    CLOSED = "closed"


Q = SurveillanceState
STAFF_ROLES = sorted(STAFF)
LEADS = sorted(NETWORK_LEADS)

TRANSITIONS: list[dict[str, Any]] = [
    {
        "trigger": "assess",
        "source": Q.NEW,
        "dest": Q.NOT_REQUIRED,
        "conditions": ["is_fully_compliant"],
        "roles": STAFF_ROLES,
    },
    {
        "trigger": "assess",
        "source": Q.NEW,
        "dest": Q.DECISION_REQUIRED,
        "unless": ["is_fully_compliant"],
        "roles": STAFF_ROLES,
    },
    {
        "trigger": "propose_options",
        "source": [Q.DECISION_REQUIRED, Q.OPTIONS_PROPOSED],
        "dest": Q.OPTIONS_PROPOSED,
        "roles": LEADS,
    },
    {
        "trigger": "record_provider_agreement",
        "source": Q.OPTIONS_PROPOSED,
        "dest": None,
        "roles": STAFF_ROLES,
        "conditions": ["is_not_commissioner_signatory"],
        "unless": ["has_provider_agreement"],
    },
    {
        "trigger": "record_commissioner_agreement",
        "source": Q.OPTIONS_PROPOSED,
        "dest": None,
        "roles": STAFF_ROLES,
        "conditions": ["is_not_provider_signatory"],
        "unless": ["has_commissioner_agreement"],
    },
    {
        "trigger": "agree",
        "source": Q.OPTIONS_PROPOSED,
        "dest": Q.AGREED,
        "roles": STAFF_ROLES,
        "conditions": ["has_provider_agreement", "has_commissioner_agreement", "has_two_signatories"],
    },
    {"trigger": "start_surveillance", "source": Q.AGREED, "dest": Q.IN_SURVEILLANCE, "roles": STAFF_ROLES},
    {"trigger": "close", "source": Q.IN_SURVEILLANCE, "dest": Q.CLOSED, "roles": LEADS, "note_required": True},
]

PROVIDER = ("chief-executive", "service-lead")
COMMISSIONER = ("commissioning-lead",)


def _agreement_chase(session: Session, row: Surveillance) -> Letter | None:
    """Chase whichever party has not yet agreed the proposed options."""
    to = (
        *(PROVIDER if row.provider_agreed_by is None else ()),
        *(COMMISSIONER if row.commissioner_agreed_by is None else ()),
    )
    if not to:
        return None
    return Letter("surveillance_agreement_chase", to=to, cc=("network-manager",), category="chase")


DEADLINE_RULES = {
    "agreement": DeadlineRule(
        owner="network-manager",
        step="the provider and the commissioner agree the proposed surveillance options",
        overdue=_agreement_chase,
    ),
}

NEXT_STEP = {
    Q.DECISION_REQUIRED: "Network Manager / Regional Lead: propose surveillance options (routine, enhanced, peer review)",
    Q.OPTIONS_PROPOSED: "Provider and commissioner: agree the options (each agreement recorded by a different person)",
    Q.AGREED: "Network: start the agreed surveillance (and schedule the peer review visit, if option 3)",
    Q.IN_SURVEILLANCE: "Network: monitor the agreed surveillance until it can be closed",
}


# Guards: pure predicates on the context.
def indicator_percent(row: Surveillance) -> float | None:
    if not row.indicators_agreed:
        return None
    return round(100.0 * row.indicators_met / row.indicators_agreed, 1)


def is_fully_compliant(ctx: Context) -> bool:
    """100% of the agreed indicators, and the good-practice threshold where one applies."""
    row: Surveillance = ctx.row
    if row.indicators_agreed < 1 or row.indicators_met != row.indicators_agreed:
        return False
    if row.good_practice_threshold is None:
        return True
    return row.good_practice_score is not None and row.good_practice_score >= row.good_practice_threshold


def has_provider_agreement(ctx: Context) -> bool:
    return bool(ctx.row.provider_agreed_by and ctx.row.provider_agreed_on)


def has_commissioner_agreement(ctx: Context) -> bool:
    return bool(ctx.row.commissioner_agreed_by and ctx.row.commissioner_agreed_on)


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def _same_account(a: int | None, b: int | None) -> bool:
    return a is not None and a == b


def has_two_signatories(ctx: Context) -> bool:
    row = ctx.row
    if row.provider_agreed_user_id is not None and row.commissioner_agreed_user_id is not None:
        return not _same_account(row.provider_agreed_user_id, row.commissioner_agreed_user_id)
    return not _same(row.provider_agreed_by, row.commissioner_agreed_by)  # agreements recorded before accounts


def is_not_provider_signatory(ctx: Context) -> bool:
    return not _same_account(ctx.user_id, ctx.row.provider_agreed_user_id)


def is_not_commissioner_signatory(ctx: Context) -> bool:
    return not _same_account(ctx.user_id, ctx.row.commissioner_agreed_user_id)


GUARDS = {
    "is_fully_compliant": is_fully_compliant,
    "has_provider_agreement": has_provider_agreement,
    "has_commissioner_agreement": has_commissioner_agreement,
    "has_two_signatories": has_two_signatories,
    "is_not_provider_signatory": is_not_provider_signatory,
    "is_not_commissioner_signatory": is_not_commissioner_signatory,
}


def parse_options(raw: Any) -> list[str]:
    """Options as a list or a comma-separated string of names or numbers, in option order."""
    items = raw if isinstance(raw, list | tuple) else str(raw or "").split(",")
    chosen = set()
    for item in items:
        key = str(item).strip().lower().removeprefix("option").strip()
        key = OPTION_ALIASES.get(key, key)
        if not key:
            continue
        if key not in OPTIONS:
            raise InvalidInput(f"surveillance option {item!r}: use routine (1), enhanced (2) or peer_review (3)")
        chosen.add(key)
    if not chosen:
        raise InvalidInput("propose_options needs options=routine,enhanced,peer_review (one or more, combinable)")
    return [k for k in OPTIONS if k in chosen]


def _check_figures(session: Session, row: Surveillance) -> None:
    if not 2000 <= row.programme_year <= 2100:
        raise InvalidInput(f"programme year {row.programme_year}: give the year it starts, e.g. 2026 for 2026-27")
    if row.indicators_agreed < 1:
        raise InvalidInput(f"indicators agreed must be at least 1 (got {row.indicators_agreed})")
    if not 0 <= row.indicators_met <= row.indicators_agreed:
        raise InvalidInput(f"indicators met must be 0-{row.indicators_agreed} (got {row.indicators_met})")
    if (row.good_practice_score is None) != (row.good_practice_threshold is None):
        raise InvalidInput("give both the good-practice score and the service's good-practice threshold, or neither")
    for value in (row.good_practice_score, row.good_practice_threshold):
        if value is not None and value < 0:
            raise InvalidInput(f"good-practice score and threshold cannot be negative (got {value})")
    earlier = session.exec(
        select(Surveillance.id).where(
            Surveillance.service_id == row.service_id,
            Surveillance.programme_year == row.programme_year,
            Surveillance.id != row.id,
            Surveillance.state != Q.NEW.value,
        )
    ).first()
    if earlier is not None:
        raise GuardRefused(
            f"service {row.service_id} already has a surveillance decision for {year_label(row.programme_year)} (surveillance {earlier})"
        )


def _actions(ctx: Context, options: list[str]) -> dict[str, str]:
    actions = {p: str(ctx.params.get(f"{p}_action") or "").strip() for p in ACTION_PARTIES}
    actions = {p: a for p, a in actions.items() if a}
    if "enhanced" in options and not actions:
        raise InvalidInput("option 2 (enhanced surveillance) needs provider_action=... and/or commissioner_action=...")
    if "enhanced" not in options and actions:
        raise InvalidInput(
            "provider and commissioner actions belong to option 2 (enhanced surveillance): add it to the options"
        )
    return actions


def _agreement_deadline(ctx: Context) -> NewDeadline:
    due = ctx.calendar.add_working_days(ctx.today, SurveillancePolicy.from_env().agreement_working_days)
    return NewDeadline("agreement", due)


DECISION = Letter("surveillance_decision", to=PROVIDER, cc=COMMISSIONER)


# Actions: one per trigger; each may set the row's own fields and returns the rest as data.
def assess(ctx: Context) -> Effects:
    row: Surveillance = ctx.row
    _check_figures(ctx.session, row)
    if ctx.dest != Q.NOT_REQUIRED:
        return Effects()
    row.closed_reason = "100% of agreed indicators met and good-practice threshold met: no additional surveillance"
    return Effects(letters=[DECISION])


def propose_options(ctx: Context) -> Effects:
    row: Surveillance = ctx.row
    options = parse_options(ctx.params.get("options"))
    row.enhanced_actions = _actions(ctx, options)
    row.options = options
    row.provider_agreed_by = row.provider_agreed_on = None
    row.commissioner_agreed_by = row.commissioner_agreed_on = None
    out = Effects(deadlines=[_agreement_deadline(ctx)], letters=[DECISION])
    if ctx.source == Q.OPTIONS_PROPOSED:  # revised: the old agreement deadline goes, a new one starts
        out.close.append(CloseDeadline("agreement"))
    return out


def record_provider_agreement(ctx: Context) -> Effects:
    ctx.row.provider_agreed_by, ctx.row.provider_agreed_on = ctx.actor, ctx.today
    ctx.row.provider_agreed_user_id = ctx.user_id
    return Effects()


def record_commissioner_agreement(ctx: Context) -> Effects:
    ctx.row.commissioner_agreed_by, ctx.row.commissioner_agreed_on = ctx.actor, ctx.today
    ctx.row.commissioner_agreed_user_id = ctx.user_id
    return Effects()


def agree(ctx: Context) -> Effects:
    """Option 3 proposes a peer review visit to the service (a follow-on the engine creates and
    links as ``visit_id``, before the letter that names it)."""
    row: Surveillance = ctx.row
    out = Effects(letters=[Letter("surveillance_agreed", to=PROVIDER, cc=(*COMMISSIONER, "network-manager"))])
    if "peer_review" in row.options and row.visit_id is None:
        out.follow_on.append(
            FollowOn(
                "visit",
                "propose",
                new=Visit(service_id=row.service_id, state="new"),
                note=f"agreed at QNT surveillance {row.id}",
                params={"reason": PEER_REVIEW_REASON},
                link="visit_id",
            )
        )
    return out


def start_surveillance(ctx: Context) -> Effects:
    return Effects()


def close(ctx: Context) -> Effects:
    ctx.row.closed_reason = ctx.note
    return Effects()


ACTIONS = {
    "assess": assess,
    "propose_options": propose_options,
    "record_provider_agreement": record_provider_agreement,
    "record_commissioner_agreement": record_commissioner_agreement,
    "agree": agree,
    "start_surveillance": start_surveillance,
    "close": close,
}


def year_label(year: int) -> str:
    """2026 -> '2026-27' (programme years run 1 April - 31 March)."""
    return f"{year}-{(year + 1) % 100:02d}"


def letter_context(session: Session, row: Surveillance) -> dict[str, Any]:
    return {
        "item": {
            "ref": f"QNT-{row.id}",
            "id": row.id,
            "title": f"QNT surveillance {year_label(row.programme_year)}",
            "state": row.state,
            "programme_year": year_label(row.programme_year),
            "indicators_agreed": row.indicators_agreed,
            "indicators_met": row.indicators_met,
            "indicator_percent": indicator_percent(row),
            "good_practice_score": row.good_practice_score,
            "good_practice_threshold": row.good_practice_threshold,
            "options": [OPTIONS[o] for o in row.options if o in OPTIONS],
            "provider_action": row.enhanced_actions.get("provider"),
            "commissioner_action": row.enhanced_actions.get("commissioner"),
            "provider_agreed_by": row.provider_agreed_by,
            "provider_agreed_on": row.provider_agreed_on,
            "commissioner_agreed_by": row.commissioner_agreed_by,
            "commissioner_agreed_on": row.commissioner_agreed_on,
            "visit_id": row.visit_id,
        },
        **service_context(session, row),
    }


SPEC = KindSpec(
    name="surveillance",
    model=Surveillance,
    states=SurveillanceState,
    initial=SurveillanceState.NEW,
    transitions=TRANSITIONS,
    guards=GUARDS,
    actions=ACTIONS,
    deadline_rules=DEADLINE_RULES,
    terminal=frozenset({Q.NOT_REQUIRED.value, Q.CLOSED.value}),
    nation_of=nation_of,
    letter_context=letter_context,
    recipient_scope=recipient_scope,
    next_step={k.value: v for k, v in NEXT_STEP.items()},
    describe="QNT surveillance decisions after the annual self-report (002 s1.1.1)",
)
