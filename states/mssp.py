"""The Maternity Safety Support Programme (MSSP): entry and exit decided by CQC ratings (seed 004).

A Trust's maternity services ``enter`` the programme when a recorded CQC assessment meets any
inclusion criterion (004, "Criteria for entry into the Maternity Safety Support Programme"):

- an overall rating of Inadequate;
- an overall rating of Requires Improvement with Inadequate in Safe or Well-led, or Inadequate
  in a third domain (Effective, Caring or Responsive);
- a CQC warning notice;
- a rating dropped from a previously Outstanding or Good to Requires Improvement (or lower) in
  the Safe or Well-led domain, compared with the previous recorded rating;
- a DHSC or NHS England and NHS Improvement request for a review of services or inquiry;
- identified to the CQC with concerns by HSIB.

"A CQC assessment which triggers automatic entry": recording one (``record_cqc_assessment``)
creates the case through the engine, naming the criteria met; the ratings at entry are the
baseline. Each later assessment is recorded on the open case (``record_assessment``); the one in
which the CQC has improved the rating by at least one step in BOTH Safe and Well-led compared
with the baseline moves the case to ``exited``. A case entered in error may be ``withdraw``n
by a network lead, with a reason. The MSSCG oversees entry and exit; this records both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select

from models.perinatal import CqcRating, MsspCase
from models.tables import Network, Organisation, Service
from states import engine
from states.clock import Clock, local_date
from states.errors import InvalidInput, MissingActor, NotFound, PermissionDenied
from states.kinds import Context, Effects, KindSpec, Letter
from states.roles import NETWORK_LEADS, STAFF, SYSTEM, check_actor_role

# ------------------------------------------------------------------ ratings

RATINGS = ("Outstanding", "Good", "Requires Improvement", "Inadequate")
STEP = {"Inadequate": 1, "Requires Improvement": 2, "Good": 3, "Outstanding": 4}
DOMAINS = ("safe", "effective", "caring", "responsive", "well_led")
DOMAIN_NAMES = {"overall": "Overall", "safe": "Safe", "effective": "Effective", "caring": "Caring",
                "responsive": "Responsive", "well_led": "Well-led"}
_ALIASES = {"ri": "Requires Improvement", "requires improvement": "Requires Improvement", "outstanding": "Outstanding",
            "good": "Good", "inadequate": "Inadequate"}


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
    IN_PROGRAMME = "in_programme"
    EXITED = "exited"
    WITHDRAWN = "withdrawn"


M = MsspState
RECORDERS = sorted({*STAFF, SYSTEM})
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "enter", "source": M.NEW, "dest": M.IN_PROGRAMME, "conditions": ["has_entry_criteria"], "roles": RECORDERS},
    {"trigger": "record_assessment", "source": M.IN_PROGRAMME, "dest": M.EXITED,
     "conditions": ["has_improved_safe_and_well_led"], "roles": RECORDERS},
    {"trigger": "record_assessment", "source": M.IN_PROGRAMME, "dest": None,
     "unless": ["has_improved_safe_and_well_led"], "roles": RECORDERS},
    {"trigger": "withdraw", "source": M.IN_PROGRAMME, "dest": M.WITHDRAWN, "roles": sorted(NETWORK_LEADS), "note_required": True},
]

TRUST = ("chief-executive", "service-lead")
COPIES = ("msscg", "cqc", "regional-chief-midwife", "lms-lead")
NEXT_STEP = {
    M.IN_PROGRAMME: "MSSCG: hands-on support (visits, mentoring, leadership development); exit when the CQC improves "
                    "Safe and Well-led each by at least one step from the ratings at entry (record the assessment: cqc record)",
}


def _rating(ctx: Context) -> CqcRating | None:
    rid = ctx.params.get("rating_id")
    return ctx.session.get(CqcRating, int(rid)) if rid is not None else None


# Guards: pure predicates on the context.
def has_entry_criteria(ctx: Context) -> bool:
    return bool(ctx.row.entry_criteria) and all(c in CRITERIA for c in ctx.row.entry_criteria)


def has_improved_safe_and_well_led(ctx: Context) -> bool:
    current = _rating(ctx)
    if current is None:
        return False
    baseline = ctx.row.baseline
    later = str(baseline.get("assessed_on") or "") < current.assessed_on.isoformat()
    return later and improved_safe_and_well_led(baseline, current)


def effects(ctx: Context) -> Effects:
    """Letters of a transition; updates the row's own fields."""
    row: MsspCase = ctx.row
    t, out = ctx.trigger, Effects()
    if t == "enter":
        current = _rating(ctx)
        if current is None:
            raise InvalidInput("enter needs rating_id: the CQC assessment that meets the criteria")
        row.entered_on, row.entry_rating_id, row.baseline = ctx.today, current.id, ratings_of(current)
        out.letters.append(Letter("mssp_entry", to=TRUST, cc=COPIES))
    elif t == "record_assessment":
        current = _rating(ctx)
        if current is None:
            raise InvalidInput("record_assessment needs rating_id: the later CQC assessment")
        exited = ctx.dest == M.EXITED
        row.assessments = [*row.assessments, {**ratings_of(current), "rating_id": current.id, "exit": exited}]
        if exited:
            row.exited_on, row.exit_rating_id = ctx.today, current.id
            out.letters.append(Letter("mssp_exit", to=TRUST, cc=COPIES, context=(("exit", ratings_of(current)),)))
    elif t == "withdraw":
        row.closed_reason = ctx.note
    return out


# ------------------------------------------------------------------ where a case sits


def _where(session: Session, row: Any) -> tuple[Organisation, Service | None, Network | None]:
    org = session.get(Organisation, row.organisation_id)
    if org is None:
        raise NotFound(f"organisation {row.organisation_id} not found")
    svc = session.get(Service, row.service_id) if row.service_id else None
    net_id = svc.network_id if svc else session.exec(
        select(Service.network_id).where(Service.organisation_id == org.id).order_by(Service.id)  # type: ignore[arg-type]
    ).first()
    return org, svc, session.get(Network, net_id) if net_id else None


def nation_of(session: Session, row: MsspCase) -> str:
    return _where(session, row)[0].nation


def recipient_scope(session: Session, row: MsspCase) -> dict[str, int | None]:
    org, svc, net = _where(session, row)
    return {"service_id": svc.id if svc else None, "organisation_id": org.id, "network_id": net.id if net else None}


def letter_context(session: Session, row: MsspCase) -> dict[str, Any]:
    org, svc, net = _where(session, row)
    return {
        "item": {"ref": f"MSSP-{row.id}", "id": row.id, "title": f"Maternity Safety Support Programme: {org.name}",
                 "entered_on": row.entered_on, "exited_on": row.exited_on,
                 "criteria": [CRITERIA.get(c, c) for c in row.entry_criteria], "baseline": row.baseline},
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
    guards={"has_entry_criteria": has_entry_criteria, "has_improved_safe_and_well_led": has_improved_safe_and_well_led},
    effects=effects,
    deadline_rules={},
    terminal=frozenset({M.EXITED.value, M.WITHDRAWN.value}),
    nation_of=nation_of,
    letter_context=letter_context,
    recipient_scope=recipient_scope,
    next_step={k.value: v for k, v in NEXT_STEP.items()},
    describe="Maternity Safety Support Programme: entry and exit by CQC rating (004)",
)


# ------------------------------------------------------------------ recording a CQC assessment


@dataclass
class AssessmentOutcome:
    """What recording one CQC assessment did."""

    rating: CqcRating
    previous: CqcRating | None
    criteria: list[str]
    entered: MsspCase | None = None  # a new case, entered automatically
    exited: list[MsspCase] = field(default_factory=list)
    continuing: list[MsspCase] = field(default_factory=list)  # open cases the assessment did not end


def maternity_service(session: Session, organisation_id: int) -> Service | None:
    """The Trust's one maternity service, if it has exactly one."""
    found = [s for s in session.exec(select(Service).where(Service.organisation_id == organisation_id).order_by(Service.id))  # type: ignore[arg-type]
             if "maternity" in s.kind.lower()]
    return found[0] if len(found) == 1 else None


def previous_rating(session: Session, organisation_id: int, service_id: int | None, before: date) -> CqcRating | None:
    q = select(CqcRating).where(CqcRating.organisation_id == organisation_id, col(CqcRating.assessed_on) < before)
    q = q.where(CqcRating.service_id == service_id) if service_id else q.where(col(CqcRating.service_id).is_(None))
    return session.exec(q.order_by(col(CqcRating.assessed_on).desc(), col(CqcRating.id).desc())).first()


def open_cases(session: Session, organisation_id: int, service_id: int | None) -> list[MsspCase]:
    q = select(MsspCase).where(MsspCase.organisation_id == organisation_id, MsspCase.state == M.IN_PROGRAMME)
    q = q.where(MsspCase.service_id == service_id) if service_id else q.where(col(MsspCase.service_id).is_(None))
    return list(session.exec(q.order_by(MsspCase.id)))  # type: ignore[arg-type]


def record_cqc_assessment(session: Session, rating_row: CqcRating, *, clock: Clock) -> AssessmentOutcome:
    """Store an assessment; enter MSSP or record it on the open case, through the engine. The caller commits."""
    if not rating_row.recorded_by or not rating_row.recorded_by.strip():
        raise MissingActor("no actor given to record a CQC assessment: name who is acting (--actor)")
    if check_actor_role(rating_row.recorded_role) not in RECORDERS:
        raise PermissionDenied(f"role {rating_row.recorded_role!r} may not record a CQC assessment: needs one of {', '.join(RECORDERS)}")
    today = local_date(clock.now())
    if rating_row.assessed_on > today:
        raise InvalidInput(f"assessment date {rating_row.assessed_on.isoformat()} is after today ({today.isoformat()})")
    for name in ("overall", "safe", "well_led"):
        setattr(rating_row, name, rating(getattr(rating_row, name), DOMAIN_NAMES[name]))
    for name in ("effective", "caring", "responsive"):
        if getattr(rating_row, name):
            setattr(rating_row, name, rating(getattr(rating_row, name), DOMAIN_NAMES[name]))
    if session.get(Organisation, rating_row.organisation_id) is None:
        raise NotFound(f"organisation {rating_row.organisation_id} not found")
    latest = previous_rating(session, rating_row.organisation_id, rating_row.service_id, date.max)
    if latest is not None and latest.assessed_on >= rating_row.assessed_on:
        raise InvalidInput(f"an assessment of {latest.assessed_on.isoformat()} is already recorded: record assessments in "
                           f"date order, each later than the last")
    previous = latest
    rating_row.recorded_at = clock.now()
    session.add(rating_row)
    session.flush()
    criteria = mssp_entry_criteria(previous, rating_row)
    out = AssessmentOutcome(rating=rating_row, previous=previous, criteria=criteria)
    actor, role = rating_row.recorded_by, rating_row.recorded_role
    params = {"rating_id": rating_row.id, "assessed_on": rating_row.assessed_on.isoformat()}
    cases = open_cases(session, rating_row.organisation_id, rating_row.service_id)
    for case in cases:
        assert case.id is not None
        fired = engine.fire(session, "mssp", case.id, "record_assessment", actor=actor, role=role, clock=clock,
                            note=f"CQC assessment of {rating_row.assessed_on.isoformat()}",
                            params={**params, "criteria": criteria})
        (out.exited if fired.row.state == M.EXITED else out.continuing).append(case)
    if criteria and not out.continuing:
        case = MsspCase(organisation_id=rating_row.organisation_id, service_id=rating_row.service_id,
                        entry_criteria=criteria, state=M.NEW)
        created = engine.create(session, "mssp", case, "enter", actor=actor, role=role, clock=clock,
                                note="entry criteria met: " + "; ".join(CRITERIA[c] for c in criteria),
                                params={**params, "criteria": criteria})
        out.entered = created.row  # type: ignore[assignment]
    return out
