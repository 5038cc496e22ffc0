"""The Maternity Safety Support Programme's use cases (seed 004): recording a CQC assessment and
acting on it, referring a Trust to the MSSCG, and recording the MSSCG's decisions, each through
the engine in the caller's transaction. What the criteria are and what each transition does:
``states/machines/mssp.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import SimpleNamespace
from typing import Any

from sqlmodel import Session

from models.perinatal import CqcRating, MsspCase
from models.tables import Organisation
from models.types import is_row_id
from states import engine
from states.clock import Clock, local_date
from states.errors import InvalidInput, MissingActor, NotFound
from states.machines.mssp import (
    CRITERIA,
    DOMAIN_NAMES,
    RATING_CRITERIA,
    ROUTE_NAMES,
    M,
    check_recorder,
    decision_trigger,
    mssp_entry_criteria,
    open_cases,
    previous_rating,
    rating,
)
from states.machines.spec import get_spec
from states.principal import Principal


@dataclass
class AssessmentOutcome:
    """What recording one CQC assessment did."""

    rating: CqcRating
    previous: CqcRating | None
    criteria: list[str]
    entered: MsspCase | None = None  # entered automatically (a new case, or a referred one)
    referred: MsspCase | None = None  # a new case referred to the MSSCG for a decision
    exit_proposed: list[MsspCase] = field(default_factory=list)  # the exit criterion met: the MSSCG decides
    continuing: list[MsspCase] = field(default_factory=list)  # open cases the assessment did not change
    awaiting: list[MsspCase] = field(default_factory=list)  # already referred, the MSSCG's decision still to come


def _acting(session: Session, principal: Principal, organisation_id: int, service_id: int | None, what: str) -> str:
    """The role ``principal`` records in for the Trust's (or its maternity service's) scope
    (``check_recorder``: a network staff role held there, or the system), else refused."""
    if not isinstance(principal, Principal):
        raise MissingActor(f"nobody is identified as acting to {what}: sign in; nothing was recorded")
    where = get_spec("mssp").recipient_scope(
        session, SimpleNamespace(organisation_id=organisation_id, service_id=service_id)
    )
    return check_recorder(principal, what, where)


def record_cqc_assessment(
    session: Session, rating_row: CqcRating, *, principal: Principal, clock: Clock
) -> AssessmentOutcome:
    """Store an assessment and act on it through the engine; the caller commits.

    ``principal`` records it (``recorded_by`` and ``recorded_role`` are set from it and the
    role it acts in for the Trust's scope, whatever the row said). Rating criteria met: the
    Trust enters automatically (a new case, or its referred one). Only referral routes met
    (warning notice, DHSC/NHSE request, HSIB): the Trust is referred to the MSSCG. On an open
    case the assessment is recorded, and proposes exit when Safe and Well-led have each
    improved by a step."""
    role = _acting(session, principal, rating_row.organisation_id, rating_row.service_id, "record a CQC assessment")
    rating_row.recorded_by, rating_row.recorded_role = principal.name, role
    acting = principal if principal.is_system else principal.acting_as(role)
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
        raise InvalidInput(
            f"an assessment of {latest.assessed_on.isoformat()} is already recorded: record assessments in "
            f"date order, each later than the last"
        )
    previous = latest
    rating_row.recorded_at = clock.now()
    session.add(rating_row)
    session.flush()
    assert rating_row.id is not None
    engine.record_change(
        session,
        "cqc_rating",
        rating_row.id,
        "record_cqc_assessment",
        principal=principal,
        role=role,
        clock=clock,
        state="recorded",
        note=rating_row.note,
        data={
            "organisation_id": rating_row.organisation_id,
            "service_id": rating_row.service_id,
            "assessed_on": rating_row.assessed_on,
            **{
                k: getattr(rating_row, k)
                for k in (
                    "overall",
                    "safe",
                    "well_led",
                    "effective",
                    "caring",
                    "responsive",
                    "warning_notice",
                    "dhsc_nhse_review_request",
                    "hsib_concern",
                )
            },
        },
    )
    criteria = mssp_entry_criteria(previous, rating_row)
    out = AssessmentOutcome(rating=rating_row, previous=previous, criteria=criteria)
    params = {"rating_id": rating_row.id, "assessed_on": rating_row.assessed_on.isoformat()}
    org_id, svc_id = rating_row.organisation_id, rating_row.service_id
    for case in open_cases(session, org_id, svc_id):
        assert case.id is not None
        fired = engine.fire(
            session,
            "mssp",
            case.id,
            "record_assessment",
            principal=acting,
            clock=clock,
            note=f"CQC assessment of {rating_row.assessed_on.isoformat()}",
            params={**params, "criteria": criteria},
        )
        proposed = fired.event.to_state == M.EXIT_PROPOSED and fired.event.from_state == M.IN_PROGRAMME
        (out.exit_proposed if proposed else out.continuing).append(case)
    if out.exit_proposed or out.continuing:
        return out
    automatic = [c for c in criteria if c in RATING_CRITERIA]
    referred = open_cases(session, org_id, svc_id, (M.REFERRED.value,))
    if automatic:
        note = (
            "a CQC assessment meeting the entry criteria: automatic entry ("
            + "; ".join(CRITERIA[c] for c in automatic)
            + ")"
        )
        if referred:
            case = referred[0]
            assert case.id is not None
            out.entered = engine.fire(
                session,
                "mssp",
                case.id,
                "enter",
                principal=acting,
                clock=clock,
                note=note,
                params={**params, "criteria": criteria},
            ).row  # type: ignore[assignment]
            out.awaiting = referred[1:]
        else:
            case = MsspCase(organisation_id=org_id, service_id=svc_id, entry_criteria=criteria, state=M.NEW)
            out.entered = engine.create(
                session,
                "mssp",
                case,
                "enter",
                principal=acting,
                clock=clock,
                note=note,
                params={**params, "criteria": criteria},
            ).row  # type: ignore[assignment]
    elif criteria:
        if referred:
            out.awaiting = referred
        else:
            out.referred = _refer(
                session,
                org_id,
                svc_id,
                criteria,
                principal=acting,
                clock=clock,
                params=params,
                note=rating_row.note,
            )
    return out


def _refer(
    session: Session,
    organisation_id: int,
    service_id: int | None,
    routes: list[str],
    *,
    principal: Principal,
    clock: Clock,
    params: Mapping[str, Any],
    note: str | None,
) -> MsspCase:
    case = MsspCase(organisation_id=organisation_id, service_id=service_id, entry_criteria=list(routes), state=M.NEW)
    why = "referred to the MSSCG for a decision on entry: " + "; ".join(CRITERIA[c] for c in routes)
    created = engine.create(
        session,
        "mssp",
        case,
        "refer",
        principal=principal,
        clock=clock,
        note=f"{why} ({note})" if note else why,
        params={**params, "criteria": list(routes)},
    )
    return created.row  # type: ignore[return-value]


def refer_trust(
    session: Session,
    organisation_id: int,
    service_id: int | None,
    routes: list[str],
    *,
    principal: Principal,
    clock: Clock,
    note: str | None = None,
) -> MsspCase:
    """Refer a Trust to the MSSCG without a CQC assessment (HSIB identification, a DHSC/NHSE
    request, a warning notice), through the engine. The caller commits."""
    role = _acting(session, principal, organisation_id, service_id, "refer a Trust to the MSSCG")
    acting = principal if principal.is_system else principal.acting_as(role)
    keys = []
    for r in routes:
        key = ROUTE_NAMES.get(str(r).strip().lower().replace("_", "-")) or ROUTE_NAMES.get(str(r).strip().lower())
        if key is None:
            raise InvalidInput(f"route {r!r}: use one of warning-notice, review-request, hsib")
        keys.append(key)
    if not keys:
        raise InvalidInput("name the route of the referral: warning-notice, review-request or hsib")
    if not is_row_id(organisation_id) or session.get(Organisation, organisation_id) is None:
        raise NotFound(f"organisation {organisation_id} not found")
    already = open_cases(
        session, organisation_id, service_id, (M.REFERRED.value, M.IN_PROGRAMME.value, M.EXIT_PROPOSED.value)
    )
    if already:
        c = already[0]
        raise InvalidInput(
            f"MSSP case {c.id} is already open for this Trust ({c.state.replace('_', ' ')}): no second referral"
        )
    return _refer(
        session,
        organisation_id,
        service_id,
        list(dict.fromkeys(keys)),
        principal=acting,
        clock=clock,
        params={},
        note=note,
    )


def decide(
    session: Session,
    case_id: int,
    decision: str,
    *,
    decided_by: str,
    decided_on: str,
    principal: Principal,
    clock: Clock,
    note: str | None = None,
) -> engine.Outcome:
    """Record the MSSCG's decision on a referred case (enter or not) or a proposed exit (exit or
    remain), through the engine. The caller commits."""
    trigger = decision_trigger(session, case_id)
    return engine.fire(
        session,
        "mssp",
        case_id,
        trigger,
        principal=principal,
        clock=clock,
        note=note,
        params={"decision": decision, "decided_by": decided_by, "decided_on": decided_on},
    )
