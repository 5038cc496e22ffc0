"""A report's recommendations (DOMAIN.md "Report": the service agrees actions answering them),
per standard or per risk or concern, recorded by network staff while the report's text can still
change: ``drafting``, ``accuracy_check``, ``inaccuracies_received`` and ``amending`` (after an
upheld appeal). Once approved, distributed or published the report is what it says: a
recommendation added then would not be in what the service read. Each one recorded is an audited
change (``record_change``, kind ``recommendation``). Action plans answer them
(``states/services/action_plans.py``).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from models.portal import Recommendation
from models.tables import Report, Risk
from models.types import is_row_id
from states import engine
from states.clock import Clock
from states.errors import InvalidInput, NotFound
from states.machines.spec import get_spec
from states.principal import Principal
from states.roles import STAFF
from states.views.work import get_visible

RECORDERS = sorted(STAFF)
OPEN_FOR_RECOMMENDATIONS = frozenset({"drafting", "accuracy_check", "inaccuracies_received", "amending"})
MAX_TEXT = 4000


def add_recommendation(
    session: Session,
    principal: Principal,
    report_id: int,
    text: str,
    standard_ref: str | None = None,
    risk_id: int | None = None,
    *,
    clock: Clock,
) -> Recommendation:
    """Record a recommendation of a report; audited, in the caller's transaction (the caller
    commits). Network staff in the report's scope; the report's text must still be open."""
    report: Report = get_visible(session, principal, "report", report_id)  # type: ignore[assignment]
    role = principal.require_any(
        RECORDERS, f"add a recommendation to report {report_id}", get_spec("report").recipient_scope(session, report)
    )
    if report.state not in OPEN_FOR_RECOMMENDATIONS:
        raise InvalidInput(
            f"report {report_id} is {report.state.replace('_', ' ')}: recommendations are recorded while it is "
            "drafted, checked for accuracy or amended"
        )
    text = (text or "").strip()
    if not text:
        raise InvalidInput("a recommendation needs its text")
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"a recommendation is at most {MAX_TEXT} characters (this one is {len(text)})")
    ref = (standard_ref or "").strip() or None
    if ref is not None and len(ref) > 60:
        raise InvalidInput("a standard reference is at most 60 characters")
    if risk_id is not None:
        risk = session.get(Risk, risk_id) if is_row_id(risk_id) else None
        if risk is None or risk.service_id != report.service_id:
            raise InvalidInput(f"risk {risk_id} is not a risk or concern of this report's service")
    rec = Recommendation(
        report_id=report_id,
        text=text,
        standard_ref=ref,
        risk_id=risk_id,
        recorded_by=principal.user_id,
        recorded_at=clock.now(),
    )
    session.add(rec)
    session.flush()  # the entry rule (states/text.py) checks the text here
    assert rec.id is not None
    engine.record_change(
        session,
        "recommendation",
        rec.id,
        "add_recommendation",
        principal=principal,
        role=role,
        clock=clock,
        state="recorded",
        data={"report_id": report_id, "text": text, "standard_ref": ref, "risk_id": risk_id},
    )
    return rec


def recommendations_of(session: Session, report_id: int) -> list[Recommendation]:
    """A report's recommendations, in the order recorded (the caller has checked it may see the report)."""
    if not is_row_id(report_id):
        raise NotFound(f"report {report_id} not found")
    return list(
        session.exec(
            select(Recommendation).where(Recommendation.report_id == report_id).order_by(col(Recommendation.id))
        )
    )


def as_rows(recs: list[Recommendation]) -> list[dict[str, Any]]:
    return [
        {"id": r.id, "text": r.text, "standard_ref": r.standard_ref, "risk_id": r.risk_id, "report_id": r.report_id}
        for r in recs
    ]
