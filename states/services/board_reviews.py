"""The Trust board's monthly maternity and neonatal safety review (seed 004, Appendix 2), as the
Trust records it in the portal, and the measure alerts it proposes to the network.

- ``record_board_review``: the Trust (its Chief Executive or Medical Director, or the Service
  Lead of the maternity or neonatal service) records a month's measures; recording the month
  again is its next version (the trend shows the latest). Each value outside its configured
  threshold (``states/measures.py``, ``PEERWATCH_PERINATAL_THRESHOLDS``) proposes a concern to
  the network: a ``MeasureAlert`` (proposed). It stands until the network raises or dismisses
  it, whatever a later version of the month says (the Trust does not take back what its board
  first reported).
- ``raise_alert``: network staff raise a perinatal concern from the alert (the concern's own use
  case, ``states/services/intake.py``, through the engine) and link it.
- ``dismiss_alert``: network staff dismiss it with a reason.

Every change is an audited event (``states.engine.record_change``): the review
(``board_review``) and each alert (``measure_alert``). The caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from models.portal import BoardReview, MeasureAlert
from models.types import is_row_id
from states import engine
from states.clock import Clock, local_date, parse_date
from states.errors import InvalidInput, NotFound, PermissionDenied, StaleVersion
from states.measures import as_number, check_measures, thresholds
from states.principal import Principal
from states.roles import STAFF
from states.services.intake import raise_perinatal_concern
from states.views.board_reviews import alert_title, first_of_month, perinatal_service, visible_service, where_of

RECORDERS = ("chief-executive", "medical-director", "service-lead")  # the Trust: its board's record (004)
DECIDERS = sorted(STAFF)  # the network raises a concern from an alert, or dismisses it
SOURCE = "trust board review (Appendix 2 measures)"
EARLIEST = date(2000, 1, 1)
MAX_REASON = 2000


def check_month(month: Any, reviewed_on: Any, today: date) -> tuple[date, date]:
    """The month (its first day) and the board's meeting date, refused if not dates, the month
    before 2000 or after this month, or the meeting before the month began or after today."""
    if not isinstance(month, date) or not isinstance(reviewed_on, date):
        raise InvalidInput("give the month reviewed and the date of the board meeting")
    first = first_of_month(month)
    if first < EARLIEST:
        raise InvalidInput(f"month {first:%Y-%m} is before 2000")
    if first > first_of_month(today):
        raise InvalidInput(f"month {first:%Y-%m} has not begun (today is {today.isoformat()})")
    if reviewed_on > today:
        raise InvalidInput(f"reviewed on {reviewed_on.isoformat()} is after today ({today.isoformat()})")
    if reviewed_on < first:
        raise InvalidInput(
            f"reviewed on {reviewed_on.isoformat()} is before the month reviewed began ({first.isoformat()})"
        )
    return first, reviewed_on


def record_board_review(
    session: Session,
    principal: Principal,
    service_id: int,
    month: date,
    reviewed_on: date,
    measures: dict[str, Any],
    clock: Clock,
) -> BoardReview:
    """Record a month's board review of a maternity or neonatal service (the next version if the
    month was recorded before) and propose a concern for each measure outside its threshold.
    Refused, nothing stored: another Trust's service or one not visible (NotFound), a role that
    does not record (PermissionDenied), a bad month or value (InvalidInput, every value's problem)."""
    svc = perinatal_service(session, principal, service_id)
    role = principal.require_any(RECORDERS, f"record the board review of {svc.name}", where_of(session, service_id))
    today = local_date(clock.now())
    first, reviewed = check_month(month, reviewed_on, today)
    values = check_measures(measures)
    limits = thresholds()  # a malformed setting refuses before anything is written
    latest = session.exec(
        select(func.max(BoardReview.version)).where(BoardReview.service_id == service_id, BoardReview.month == first)
    ).one()
    version = int(latest or 0) + 1
    assert principal.user_id is not None
    review = BoardReview(
        service_id=service_id,
        month=first,
        version=version,
        measures=values,
        reviewed_on=reviewed,
        recorded_by=principal.user_id,
        recorded_at=clock.now(),
    )
    session.add(review)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise StaleVersion(
            f"the board review of {first:%B %Y} was recorded by someone else at the same moment: show it again"
        ) from None
    assert review.id is not None
    engine.record_change(
        session,
        "board_review",
        review.id,
        "record_board_review",
        principal=principal,
        role=role,
        clock=clock,
        state="recorded",
        data={
            "service_id": service_id,
            "month": first.isoformat(),
            "version": version,
            "reviewed_on": reviewed.isoformat(),
            "measures": values,
        },
    )
    for key, limit in limits.items():
        value = values.get(key)
        outside = value is not None and limit.outside(value)
        _propose_or_withdraw(session, review, key, value, limit.text, outside, principal, role, clock)
    return review


def _alert_of(session: Session, service_id: int, month: date, measure: str) -> MeasureAlert | None:
    return session.exec(
        select(MeasureAlert).where(
            MeasureAlert.service_id == service_id, MeasureAlert.month == month, MeasureAlert.measure == measure
        )
    ).first()


def _propose_or_withdraw(
    session: Session,
    review: BoardReview,
    key: str,
    value: Any,
    threshold: str,
    outside: bool,
    principal: Principal,
    role: str,
    clock: Clock,
) -> None:
    alert = _alert_of(session, review.service_id, review.month, key)
    if alert is not None and alert.status not in ("proposed", "withdrawn"):
        return  # raised or dismissed by the network: its decision stands
    if outside:
        number = as_number(value)
        assert number is not None
        before = alert.status if alert else None
        same = alert is not None and (alert.status, alert.value, alert.threshold) == ("proposed", number, threshold)
        if alert is None:
            alert = MeasureAlert(service_id=review.service_id, month=review.month, measure=key, value=number,
                                 threshold=threshold, review_id=review.id)  # type: ignore[arg-type]  # fmt: skip
        alert.value, alert.threshold, alert.status, alert.reason = number, threshold, "proposed", None
        alert.review_id = review.id  # type: ignore[assignment]
        session.add(alert)
        session.flush()
        if same:
            return  # the same proposal, now from the latest version: nothing new to audit
        action = "propose_concern"
    else:
        # Back within the threshold in a later version: the proposal stands until the network
        # decides it (a Trust may not take back what its board first reported); the network
        # sees the latest figures on the trend beside it.
        return
    assert alert.id is not None
    engine.record_change(
        session,
        "measure_alert",
        alert.id,
        action,
        principal=principal,
        role=role,
        clock=clock,
        state=alert.status,
        from_state=before,
        data={"measure": key, "value": alert.value, "threshold": threshold, "review_id": review.id,
              "month": review.month.isoformat(), "service_id": review.service_id},
    )  # fmt: skip


def _deciding(session: Session, principal: Principal, alert_id: int, what: str) -> tuple[MeasureAlert, str]:
    """The proposed alert and the staff role ``principal`` decides it in; NotFound if it is not
    visible to them, PermissionDenied without a staff role there, InvalidInput once decided."""
    alert = session.get(MeasureAlert, alert_id) if is_row_id(alert_id) else None
    if alert is None:
        raise NotFound(f"measure alert {alert_id} not found")
    try:
        visible_service(session, principal, alert.service_id)
    except NotFound:
        raise NotFound(f"measure alert {alert_id} not found") from None
    role = principal.require_any(DECIDERS, f"{what} measure alert {alert_id}", where_of(session, alert.service_id))
    if alert.status != "proposed":
        raise InvalidInput(f"measure alert {alert_id} is {alert.status}: only a proposed one may be decided")
    return alert, role


def raise_alert(
    session: Session,
    principal: Principal,
    alert_id: int,
    clock: Clock,
    *,
    title: str | None = None,
    note: str | None = None,
) -> MeasureAlert:
    """Raise a perinatal concern from the alert (at the provider level, through the engine, as
    ``principal``) and link it; the alert is ``raised``."""
    alert, role = _deciding(session, principal, alert_id, "raise a concern from")
    title = " ".join((title or "").split()) or alert_title(alert)
    if len(title) > 300:
        raise InvalidInput(f"the concern's title is {len(title)} characters: keep it to 300")
    out = raise_perinatal_concern(
        session,
        service=alert.service_id,
        title=title,
        raised=local_date(clock.now()),
        source=SOURCE,
        principal=principal,
        clock=clock,
        note=(note or "").strip() or f"proposed by the board review of {alert.month:%B %Y} (alert {alert.id})",
    )
    concern_id = out.row.id
    _decide(session, alert, "raised", principal, role, clock, concern_id=concern_id, reason=None)
    return alert


def dismiss_alert(session: Session, principal: Principal, alert_id: int, reason: str, clock: Clock) -> MeasureAlert:
    """Dismiss the alert with a reason (required); no concern is raised."""
    alert, role = _deciding(session, principal, alert_id, "dismiss")
    text = (reason or "").strip()
    if not text:
        raise InvalidInput("give the reason the alert is dismissed")
    if len(text) > MAX_REASON:
        raise InvalidInput(f"the reason is {len(text):,} characters: keep it to {MAX_REASON:,}")
    _decide(session, alert, "dismissed", principal, role, clock, concern_id=None, reason=text)
    return alert


def _decide(
    session: Session,
    alert: MeasureAlert,
    status: str,
    principal: Principal,
    role: str,
    clock: Clock,
    *,
    concern_id: int | None,
    reason: str | None,
) -> None:
    alert.status = status
    alert.concern_id = concern_id
    alert.reason = reason
    alert.decided_by = principal.user_id
    alert.decided_at = clock.now()
    session.add(alert)
    session.flush()
    assert alert.id is not None
    engine.record_change(
        session,
        "measure_alert",
        alert.id,
        "raise_concern" if status == "raised" else "dismiss",
        principal=principal,
        role=role,
        clock=clock,
        state=status,
        from_state="proposed",
        note=reason,
        data={"concern_id": concern_id, "measure": alert.measure, "month": alert.month.isoformat()},
    )


def check_role_to_record(session: Session, principal: Principal, service_id: int) -> bool:
    """Whether ``principal`` may record the service's board review (the page offers the form)."""
    perinatal_service(session, principal, service_id)
    try:
        principal.require_any(RECORDERS, "record a board review", where_of(session, service_id))
    except PermissionDenied:
        return False
    return True


FIELD_PREFIX = "m-"  # a measure's form field: m-<key>


def read_month(text: str | None) -> date:
    """A month as a form gives it, YYYY-MM (or any day of it, YYYY-MM-DD): its first day."""
    raw = (text or "").strip()
    if len(raw) == 7:
        raw += "-01"
    return first_of_month(parse_date(raw, "month (YYYY-MM)"))


def read_review_form(posted: Mapping[str, str]) -> tuple[date, date, dict[str, Any]]:
    """(month, reviewed_on, measures) from the review form's fields (the values still as text:
    ``record_board_review`` checks them)."""
    month = read_month(posted.get("month"))
    reviewed = parse_date((posted.get("reviewed_on") or "").strip(), "date of the board meeting (YYYY-MM-DD)")
    measures = {k.removeprefix(FIELD_PREFIX): v for k, v in posted.items() if k.startswith(FIELD_PREFIX)}
    return month, reviewed, measures
