"""The Maternity Safety Support Programme (MSSP): entry and exit overseen by the MSSCG (seed 004).

The inclusion criteria (004, "Criteria for entry into the Maternity Safety Support Programme"):

- an overall rating of Inadequate;
- an overall rating of Requires Improvement with Inadequate in Safe or Well-led, or Inadequate
  in a third domain (Effective, Caring or Responsive);
- a rating dropped from a previously Outstanding or Good to Requires Improvement (or lower) in
  the Safe or Well-led domain, compared with the previous recorded rating;
- a CQC warning notice;
- a DHSC or NHS England and NHS Improvement request for a review of services or inquiry;
- identified to the CQC with concerns by HSIB.

Only "a CQC assessment which triggers automatic entry" enters by itself: recording a CQC
assessment (``states.services.mssp.record_cqc_assessment``) that meets one of the first three (the RATING criteria)
``enter``s the Trust through the engine; the ratings at entry are the baseline. The other
routes (a warning notice, a DHSC/NHSE request, HSIB identification) ``refer`` the Trust to the
Maternity Safety Surveillance and Concerns Group (MSSCG), which "will oversee entry and exit":
the network office records the MSSCG's decision (``decide_entry``: enter or not, who decided,
when), it does not decide for it. A referred Trust whose next CQC assessment meets a rating
criterion enters automatically.

Each later assessment is recorded on the open case (``record_assessment``); the one in which
the CQC has improved the rating by at least one step in BOTH Safe and Well-led compared with
the baseline PROPOSES exit (``exit_proposed``, a letter to the MSSCG); exit too is the MSSCG's
decision (``decide_exit``: exit, or remain in the programme). A case entered or referred in
error may be ``withdraw``n by a network lead, with a reason. DOMAIN.md "Perinatal quality
surveillance".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select

from models.perinatal import CqcRating, MsspCase
from models.tables import Network, Organisation, Service
from models.types import is_row_id
from states.clock import parse_date
from states.errors import InvalidInput, NotFound
from states.machines.perinatal_policy import PerinatalPolicy
from states.machines.spec import Context, Effects, KindSpec, Letter
from states.principal import Principal
from states.roles import NETWORK_LEADS, STAFF, SYSTEM

# ------------------------------------------------------------------ ratings

RATINGS = ("Outstanding", "Good", "Requires Improvement", "Inadequate")
STEP = {"Inadequate": 1, "Requires Improvement": 2, "Good": 3, "Outstanding": 4}
DOMAINS = ("safe", "effective", "caring", "responsive", "well_led")
DOMAIN_NAMES = {
    "overall": "Overall",
    "safe": "Safe",
    "effective": "Effective",
    "caring": "Caring",
    "responsive": "Responsive",
    "well_led": "Well-led",
}
_ALIASES = {
    "ri": "Requires Improvement",
    "requires improvement": "Requires Improvement",
    "outstanding": "Outstanding",
    "good": "Good",
    "inadequate": "Inadequate",
}


def rating(text: str | None, what: str = "rating") -> str:
    """A CQC rating as the CQC spells it; accepts any case, dashes or underscores, and RI."""
    key = " ".join(str(text or "").replace("-", " ").replace("_", " ").lower().split())
    if key not in _ALIASES:
        raise InvalidInput(f"{what} {text!r}: use one of {', '.join(RATINGS)} (or RI)")
    return _ALIASES[key]


# ------------------------------------------------------------------ the entry criteria (pure)

CRITERIA = {
    "overall_inadequate": "an overall rating of Inadequate",
    "ri_inadequate_safe_or_well_led": "an overall rating of Requires Improvement with Inadequate in Safe or Well-led",
    "ri_inadequate_third_domain": "an overall rating of Requires Improvement with Inadequate in a third domain "
    "(Effective, Caring or Responsive)",
    "warning_notice": "issued with a CQC warning notice",
    "dropped_safe": "Safe dropped from a previously Outstanding or Good rating to Requires Improvement or lower",
    "dropped_well_led": "Well-led dropped from a previously Outstanding or Good rating to Requires Improvement or lower",
    "review_request": "a DHSC or NHS England and NHS Improvement request for a review of services or inquiry",
    "hsib_concern": "identified to the CQC with concerns by HSIB",
}


def _get(r: Any, name: str) -> Any:
    return r.get(name) if isinstance(r, Mapping) else getattr(r, name, None)


def _dropped(previous: Any, current: Any, domain: str) -> bool:
    before, now = _get(previous, domain), _get(current, domain)
    return before in ("Outstanding", "Good") and now in ("Requires Improvement", "Inadequate")


def mssp_entry_criteria(previous: Any | None, current: Any) -> list[str]:
    """The MSSP inclusion criteria ``current`` meets (in ``CRITERIA`` order), given the ``previous`` rating."""
    overall = _get(current, "overall")
    met: list[str] = []
    if overall == "Inadequate":
        met.append("overall_inadequate")
    if overall == "Requires Improvement":
        if "Inadequate" in (_get(current, "safe"), _get(current, "well_led")):
            met.append("ri_inadequate_safe_or_well_led")
        if "Inadequate" in (_get(current, d) for d in ("effective", "caring", "responsive")):
            met.append("ri_inadequate_third_domain")
    if _get(current, "warning_notice"):
        met.append("warning_notice")
    if previous is not None:
        met += [f"dropped_{d}" for d in ("safe", "well_led") if _dropped(previous, current, d)]
    if _get(current, "dhsc_nhse_review_request"):
        met.append("review_request")
    if _get(current, "hsib_concern"):
        met.append("hsib_concern")
    return met


def improved_safe_and_well_led(baseline: Any, current: Any) -> bool:
    """Exit: the CQC improved the rating by at least one step in BOTH Safe and Well-led."""
    return all(
        _get(baseline, d) in STEP and _get(current, d) in STEP and STEP[_get(current, d)] >= STEP[_get(baseline, d)] + 1
        for d in ("safe", "well_led")
    )


def ratings_of(r: Any) -> dict[str, Any]:
    out = {"assessed_on": _get(r, "assessed_on"), "overall": _get(r, "overall"), **{d: _get(r, d) for d in DOMAINS}}
    if isinstance(out["assessed_on"], date):
        out["assessed_on"] = out["assessed_on"].isoformat()
    return out


# ------------------------------------------------------------------ the machine


class MsspState(StrEnum):
    NEW = "new"
    REFERRED = "referred"  # to the MSSCG, which decides entry
    IN_PROGRAMME = "in_programme"
    EXIT_PROPOSED = "exit_proposed"  # the exit criterion is met; the MSSCG decides exit
    EXITED = "exited"
    NOT_ENTERED = "not_entered"  # the MSSCG decided a referred Trust does not enter
    WITHDRAWN = "withdrawn"


M = MsspState
RECORDERS = sorted({*STAFF, SYSTEM})
DECISION_RECORDERS = sorted(STAFF)  # a person records what the MSSCG decided; the sweep never does
# "A CQC assessment which triggers automatic entry": the rating criteria. The rest refer.
RATING_CRITERIA = (
    "overall_inadequate",
    "ri_inadequate_safe_or_well_led",
    "ri_inadequate_third_domain",
    "dropped_safe",
    "dropped_well_led",
)
REFERRAL_ROUTES = ("warning_notice", "review_request", "hsib_concern")
ENTRY_DECISIONS = {"enter": "enter the programme", "not_enter": "not enter the programme"}
EXIT_DECISIONS = {"exit": "exit the programme", "remain": "remain in the programme"}
TRANSITIONS: list[dict[str, Any]] = [
    {
        "trigger": "enter",
        "source": [M.NEW, M.REFERRED],
        "dest": M.IN_PROGRAMME,
        "conditions": ["has_rating_criteria"],
        "roles": RECORDERS,
    },
    {"trigger": "refer", "source": M.NEW, "dest": M.REFERRED, "conditions": ["has_referral_route"], "roles": RECORDERS},
    {
        "trigger": "decide_entry",
        "source": M.REFERRED,
        "dest": M.IN_PROGRAMME,
        "conditions": ["is_decision_to_enter"],
        "roles": DECISION_RECORDERS,
    },
    {
        "trigger": "decide_entry",
        "source": M.REFERRED,
        "dest": M.NOT_ENTERED,
        "unless": ["is_decision_to_enter"],
        "roles": DECISION_RECORDERS,
    },
    {
        "trigger": "record_assessment",
        "source": M.IN_PROGRAMME,
        "dest": M.EXIT_PROPOSED,
        "conditions": ["has_improved_safe_and_well_led"],
        "roles": RECORDERS,
    },
    {
        "trigger": "record_assessment",
        "source": M.IN_PROGRAMME,
        "dest": None,
        "unless": ["has_improved_safe_and_well_led"],
        "roles": RECORDERS,
    },
    {"trigger": "record_assessment", "source": M.EXIT_PROPOSED, "dest": None, "roles": RECORDERS},
    {
        "trigger": "decide_exit",
        "source": M.EXIT_PROPOSED,
        "dest": M.EXITED,
        "conditions": ["is_decision_to_exit"],
        "roles": DECISION_RECORDERS,
    },
    {
        "trigger": "decide_exit",
        "source": M.EXIT_PROPOSED,
        "dest": M.IN_PROGRAMME,
        "unless": ["is_decision_to_exit"],
        "roles": DECISION_RECORDERS,
    },
    {
        "trigger": "withdraw",
        "source": [M.REFERRED, M.IN_PROGRAMME, M.EXIT_PROPOSED],
        "dest": M.WITHDRAWN,
        "roles": sorted(NETWORK_LEADS),
        "note_required": True,
    },
]

TRUST = ("chief-executive", "service-lead")
COPIES = ("msscg", "cqc", "regional-chief-midwife", "lms-lead")
TO_MSSCG = ("msscg",)
MSSCG_COPIES = ("chief-executive", "service-lead", "regional-chief-midwife", "lms-lead")
NEXT_STEP = {
    M.REFERRED: "MSSCG: decide whether the Trust enters the programme; record its decision (peerwatch mssp decide ID "
    "--decision enter|not_enter --decided-by ... --decided-on ...)",
    M.IN_PROGRAMME: "MSSCG: hands-on support (visits, mentoring, leadership development); exit is proposed when the CQC "
    "improves Safe and Well-led each by at least one step from the ratings at entry (cqc record)",
    M.EXIT_PROPOSED: "MSSCG: the exit criterion is met; decide exit and record its decision (peerwatch mssp decide ID "
    "--decision exit|remain --decided-by ... --decided-on ...)",
}


def _rating(ctx: Context) -> CqcRating | None:
    rid = ctx.params.get("rating_id")
    if rid is None:
        return None
    number = int(rid)
    return ctx.session.get(CqcRating, number) if is_row_id(number) else None


# Guards: pure predicates on the context.
def has_rating_criteria(ctx: Context) -> bool:
    return any(c in RATING_CRITERIA for c in ctx.params.get("criteria") or ctx.row.entry_criteria or ())


def has_referral_route(ctx: Context) -> bool:
    routes = ctx.params.get("criteria") or ctx.row.entry_criteria or ()
    return bool(routes) and all(c in REFERRAL_ROUTES for c in routes)


def decision_key(value: Any) -> str:
    """``Not-Enter`` -> ``not_enter``: a decision as the machine spells it."""
    return str(value or "").strip().lower().replace("-", "_").replace(" ", "_")


def is_decision_to_enter(ctx: Context) -> bool:
    return decision_key(ctx.params.get("decision")) == "enter"


def is_decision_to_exit(ctx: Context) -> bool:
    return decision_key(ctx.params.get("decision")) == "exit"


def has_improved_safe_and_well_led(ctx: Context) -> bool:
    current = _rating(ctx)
    if current is None:
        return False
    baseline = ctx.row.baseline
    later = str(baseline.get("assessed_on") or "") < current.assessed_on.isoformat()
    return later and improved_safe_and_well_led(baseline, current)


def _decision(ctx: Context, allowed: Mapping[str, str]) -> dict[str, Any]:
    """The MSSCG's decision as the network office records it: what, who decided, when."""
    decision = decision_key(ctx.params.get("decision"))
    if decision not in allowed:
        raise InvalidInput(
            f"{ctx.trigger}: decision {ctx.params.get('decision')!r}: the MSSCG decides one of {', '.join(allowed)}"
        )
    decided_by = str(ctx.params.get("decided_by") or "").strip()
    if not decided_by:
        raise InvalidInput(f"{ctx.trigger}: name who decided (decided_by, e.g. the MSSCG co-chairs at its meeting)")
    raw_on = ctx.params.get("decided_on")
    if not raw_on:
        raise InvalidInput(f"{ctx.trigger}: give the date the MSSCG decided (decided_on)")
    decided_on = parse_date(str(raw_on), "decided_on date")
    if decided_on > ctx.today:
        raise InvalidInput(f"decided_on {decided_on.isoformat()} is after today ({ctx.today.isoformat()})")
    since = ctx.row.referred_on if ctx.trigger == "decide_entry" else ctx.row.exit_proposed_on
    if since and decided_on < since:
        raise InvalidInput(
            f"decided_on {decided_on.isoformat()} is before the question was put to the MSSCG ({since.isoformat()})"
        )
    entry = {
        "question": "entry" if ctx.trigger == "decide_entry" else "exit",
        "decision": decision,
        "forum": PerinatalPolicy.from_env().forums["national"],
        "decided_by": decided_by,
        "decided_on": decided_on.isoformat(),
        "recorded_by": ctx.actor,
        "recorded_role": ctx.role,
        "recorded_on": ctx.today.isoformat(),
        "note": ctx.note,
    }
    ctx.row.decisions = [*ctx.row.decisions, entry]
    return entry


def _latest_rating(ctx: Context) -> CqcRating | None:
    row: MsspCase = ctx.row
    return previous_rating(ctx.session, row.organisation_id, row.service_id, date.max)


# Actions: one per trigger; each may set the case's own fields and returns the rest as data.
def enter(ctx: Context) -> Effects:
    """Automatic entry on a CQC assessment meeting a rating criterion: its ratings are the baseline."""
    row: MsspCase = ctx.row
    current = _rating(ctx)
    if current is None:
        raise InvalidInput("enter needs rating_id: the CQC assessment that meets the rating criteria")
    given = [c for c in ctx.params.get("criteria") or () if c in CRITERIA]
    row.entry_criteria = list(dict.fromkeys([*row.entry_criteria, *given]))
    row.entered_on, row.entry_rating_id, row.baseline = ctx.today, current.id, ratings_of(current)
    return Effects(letters=[Letter("mssp_entry", to=TRUST, cc=COPIES, context=(("how", "automatic"),))])


def refer(ctx: Context) -> Effects:
    """Referred to the MSSCG, which decides entry."""
    row: MsspCase = ctx.row
    rid = ctx.params.get("rating_id")
    row.referred_on = ctx.today
    row.entry_rating_id = int(rid) if rid is not None else None
    return Effects(letters=[Letter("mssp_referral", to=TO_MSSCG, cc=MSSCG_COPIES)])


def decide_entry(ctx: Context) -> Effects:
    """The MSSCG's decision on a referred Trust, as recorded: enter (the latest ratings the baseline) or not."""
    row: MsspCase = ctx.row
    decision = _decision(ctx, ENTRY_DECISIONS)
    if ctx.dest == M.IN_PROGRAMME:
        latest = _latest_rating(ctx)
        row.entered_on = parse_iso(decision["decided_on"])
        if latest is not None:
            row.baseline = ratings_of(latest)
        return Effects(
            letters=[Letter("mssp_entry", to=TRUST, cc=COPIES, context=(("how", "decided"), ("decision", decision)))]
        )
    row.closed_reason = "the MSSCG decided the Trust does not enter the programme"
    return Effects(letters=[Letter("mssp_not_entered", to=TRUST, cc=COPIES, context=(("decision", decision),))])


def record_assessment(ctx: Context) -> Effects:
    """A later CQC assessment on the open case; Safe and Well-led each a step better proposes exit."""
    row: MsspCase = ctx.row
    current = _rating(ctx)
    if current is None:
        raise InvalidInput("record_assessment needs rating_id: the later CQC assessment")
    proposed = ctx.dest == M.EXIT_PROPOSED
    if not row.baseline:  # entered by decision before any rating was recorded: this is the baseline
        row.baseline = ratings_of(current)
    row.assessments = [
        *row.assessments,
        {**ratings_of(current), "rating_id": current.id, "exit_proposed": proposed},
    ]
    if not proposed:
        return Effects()
    row.exit_proposed_on, row.exit_rating_id = ctx.today, current.id
    return Effects(
        letters=[Letter("mssp_exit_proposed", to=TO_MSSCG, cc=MSSCG_COPIES, context=(("exit", ratings_of(current)),))]
    )


def decide_exit(ctx: Context) -> Effects:
    """The MSSCG's decision on a proposed exit, as recorded: exit, or remain in the programme."""
    row: MsspCase = ctx.row
    decision = _decision(ctx, EXIT_DECISIONS)
    exit_rating = ctx.session.get(CqcRating, row.exit_rating_id) if row.exit_rating_id else None
    shown = ratings_of(exit_rating) if exit_rating else {}
    if ctx.dest == M.EXITED:
        row.exited_on = parse_iso(decision["decided_on"])
        return Effects(
            letters=[Letter("mssp_exit", to=TRUST, cc=COPIES, context=(("exit", shown), ("decision", decision)))]
        )
    row.exit_proposed_on, row.exit_rating_id = None, None
    return Effects(
        letters=[Letter("mssp_exit_declined", to=TRUST, cc=COPIES, context=(("exit", shown), ("decision", decision)))]
    )


def withdraw(ctx: Context) -> Effects:
    """Entered or referred in error: closed with the network lead's reason."""
    ctx.row.closed_reason = ctx.note
    return Effects()


ACTIONS = {
    "enter": enter,
    "refer": refer,
    "decide_entry": decide_entry,
    "record_assessment": record_assessment,
    "decide_exit": decide_exit,
    "withdraw": withdraw,
}


def parse_iso(text: str) -> date:
    return date.fromisoformat(text)


# ------------------------------------------------------------------ where a case sits


def _where(session: Session, row: Any) -> tuple[Organisation, Service | None, Network | None]:
    org = session.get(Organisation, row.organisation_id)
    if org is None:
        raise NotFound(f"organisation {row.organisation_id} not found")
    svc = session.get(Service, row.service_id) if row.service_id else None
    net_id = (
        svc.network_id
        if svc
        else session.exec(
            select(Service.network_id).where(Service.organisation_id == org.id).order_by(Service.id)  # type: ignore[arg-type]
        ).first()
    )
    return org, svc, session.get(Network, net_id) if net_id else None


def nation_of(session: Session, row: MsspCase) -> str:
    return _where(session, row)[0].nation


def recipient_scope(session: Session, row: MsspCase) -> dict[str, int | None]:
    org, svc, net = _where(session, row)
    return {"service_id": svc.id if svc else None, "organisation_id": org.id, "network_id": net.id if net else None}


def letter_context(session: Session, row: MsspCase) -> dict[str, Any]:
    org, svc, net = _where(session, row)
    return {
        "item": {
            "ref": f"MSSP-{row.id}",
            "id": row.id,
            "title": f"Maternity Safety Support Programme: {org.name}",
            "entered_on": row.entered_on,
            "exited_on": row.exited_on,
            "referred_on": row.referred_on,
            "exit_proposed_on": row.exit_proposed_on,
            "state": row.state,
            "decisions": row.decisions,
            "criteria": [CRITERIA.get(c, c) for c in row.entry_criteria],
            "baseline": row.baseline,
            "routes": [CRITERIA[c] for c in row.entry_criteria if c in REFERRAL_ROUTES],
            "rating_criteria": [CRITERIA[c] for c in row.entry_criteria if c in RATING_CRITERIA],
        },
        "msscg": PerinatalPolicy.from_env().forums["national"],
        "domain_names": DOMAIN_NAMES,
        "service": {"name": svc.name if svc else "Maternity services", "kind": svc.kind if svc else "Maternity"},
        "organisation": {"name": org.name},
        "network": {"name": net.name if net else "NHS England", "code": net.code if net else ""},
    }


SPEC = KindSpec(
    name="mssp",
    model=MsspCase,
    states=MsspState,
    initial=MsspState.NEW,
    transitions=TRANSITIONS,
    guards={
        "has_rating_criteria": has_rating_criteria,
        "has_referral_route": has_referral_route,
        "is_decision_to_enter": is_decision_to_enter,
        "is_decision_to_exit": is_decision_to_exit,
        "has_improved_safe_and_well_led": has_improved_safe_and_well_led,
    },
    actions=ACTIONS,
    deadline_rules={},
    terminal=frozenset({M.EXITED.value, M.WITHDRAWN.value, M.NOT_ENTERED.value}),
    nation_of=nation_of,
    letter_context=letter_context,
    recipient_scope=recipient_scope,
    next_step={k.value: v for k, v in NEXT_STEP.items()},
    describe="Maternity Safety Support Programme: automatic entry by CQC rating, referral to and decisions of the MSSCG (004)",
)


# ------------------------------------------------------------------ recording a CQC assessment


def maternity_service(session: Session, organisation_id: int) -> Service | None:
    """The Trust's one maternity service, if it has exactly one."""
    found = [
        s
        for s in session.exec(select(Service).where(Service.organisation_id == organisation_id).order_by(Service.id))  # type: ignore[arg-type]
        if "maternity" in s.kind.lower()
    ]
    return found[0] if len(found) == 1 else None


def previous_rating(session: Session, organisation_id: int, service_id: int | None, before: date) -> CqcRating | None:
    q = select(CqcRating).where(CqcRating.organisation_id == organisation_id, col(CqcRating.assessed_on) < before)
    q = q.where(CqcRating.service_id == service_id) if service_id else q.where(col(CqcRating.service_id).is_(None))
    return session.exec(q.order_by(col(CqcRating.assessed_on).desc(), col(CqcRating.id).desc())).first()


def open_cases(
    session: Session,
    organisation_id: int,
    service_id: int | None,
    states: tuple[str, ...] = (M.IN_PROGRAMME.value, M.EXIT_PROPOSED.value),
) -> list[MsspCase]:
    q = select(MsspCase).where(MsspCase.organisation_id == organisation_id, col(MsspCase.state).in_(states))
    q = q.where(MsspCase.service_id == service_id) if service_id else q.where(col(MsspCase.service_id).is_(None))
    return list(session.exec(q.order_by(MsspCase.id)))  # type: ignore[arg-type]


def check_recorder(principal: Principal, what: str, where: Mapping[str, int | None] | None = None) -> str:
    """Validator: the role ``principal`` records in: a staff role it holds at ``where`` (the
    Trust's or service's scope), or ``system`` for the system principal; refused with the reason
    otherwise (``PermissionDenied``)."""
    if principal.is_system:
        return SYSTEM
    return principal.require_any([r for r in RECORDERS if r != SYSTEM], what, where)


ROUTE_NAMES = {
    "warning-notice": "warning_notice",
    "review-request": "review_request",
    "hsib": "hsib_concern",
    **{r: r for r in REFERRAL_ROUTES},
}


def decision_trigger(session: Session, case_id: int) -> str:
    """``decide_entry`` on a referred case, ``decide_exit`` on a proposed exit."""
    row = session.get(MsspCase, case_id)
    if row is None:
        raise NotFound(f"mssp {case_id} not found")
    trigger = {M.REFERRED.value: "decide_entry", M.EXIT_PROPOSED.value: "decide_exit"}.get(row.state)
    if trigger is None:
        raise InvalidInput(
            f"MSSP case {case_id} is '{row.state}': the MSSCG's decision is recorded on a referred case "
            f"(enter, not_enter) or a proposed exit (exit, remain)"
        )
    return trigger
