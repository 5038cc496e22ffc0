"""What the Trusts, the LMS and the network see of the monthly perinatal board reviews (seed 004,
Appendix 2): a service's measures as a monthly trend, one month's latest review (the form's
values), and the measure alerts proposed to the network. Read only.

Who sees a service's reviews: anyone with a grant covering it (its Trust's accounts, an LMS lead
or other commissioner granted it, network staff). Anyone else gets the same NotFound as a
missing service. The alerts are the network staff's: a staff role in the service's scope.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from models.portal import BoardReview, MeasureAlert
from models.tables import Network, Organisation, Service
from models.types import is_row_id
from states.clock import Clock, SystemClock, local_date
from states.errors import InvalidInput, NotFound
from states.machines.perinatal_policy import PerinatalPolicy
from states.measures import BY_KEY, MEASURES, Threshold, show_value, thresholds
from states.principal import INSTALLATION, Principal
from states.roles import STAFF
from states.scope import service_of

MAX_MONTHS = 36
PROPOSED = "proposed"


def first_of_month(day: date) -> date:
    return day.replace(day=1)


def add_months(month: date, n: int) -> date:
    k = month.year * 12 + month.month - 1 + n
    return date(k // 12, k % 12 + 1, 1)


def where_of(session: Session, service_id: int) -> dict[str, int | None]:
    svc, org, net = service_of(session, service_id)
    return {"service_id": svc.id, "organisation_id": org.id, "network_id": net.id}


def visible_service(session: Session, principal: Principal, service_id: int) -> Service:
    """The service, if some grant of ``principal`` covers it; else NotFound (as if absent)."""
    missing = NotFound(f"service {service_id} not found")
    if not is_row_id(service_id) or session.get(Service, service_id) is None:
        raise missing
    if any(g.scope == INSTALLATION for g in principal.grants):
        return service_of(session, service_id)[0]
    where = where_of(session, service_id)
    if not any(g.covers(where) for g in principal.grants):
        raise missing
    return service_of(session, service_id)[0]


def is_perinatal(svc: Service) -> bool:
    """A maternity or neonatal service (a kind naming one of the policy's perinatal service kinds)."""
    return any(k in svc.kind.lower() for k in PerinatalPolicy.from_env().service_kinds)


def perinatal_service(session: Session, principal: Principal, service_id: int) -> Service:
    """A visible maternity or neonatal service, or NotFound / InvalidInput saying why not."""
    svc = visible_service(session, principal, service_id)
    if not is_perinatal(svc):
        kinds = ", ".join(PerinatalPolicy.from_env().service_kinds)
        raise InvalidInput(
            f"{svc.name} is a {svc.kind} service: board reviews are recorded for a service whose kind names "
            f"one of {kinds}"
        )
    return svc


def latest_reviews(session: Session, service_id: int, since: date, until: date) -> dict[date, BoardReview]:
    """The latest version of each month's review from ``since`` to ``until`` (first days)."""
    rows = session.exec(
        select(BoardReview)
        .where(BoardReview.service_id == service_id, BoardReview.month >= since, BoardReview.month <= until)
        .order_by(col(BoardReview.month), col(BoardReview.version))
    )
    out: dict[date, BoardReview] = {}
    for r in rows:
        out[r.month] = r  # the later version wins
    return out


def _cell(m: Any, value: Any, limit: Threshold | None) -> dict[str, Any]:
    outside = value is not None and limit is not None and limit.outside(value)
    return {"value": value, "display": show_value(m, value), "outside": outside}


def trend(
    session: Session, principal: Principal, service_id: int, months: int = 12, *, clock: Clock | None = None
) -> dict[str, Any]:
    """Per measure, a monthly series (the latest version of each month's review) for the
    ``months`` months up to this one, oldest first; each cell marked when outside its threshold."""
    if not 1 <= months <= MAX_MONTHS:
        raise InvalidInput(f"months {months}: give 1 to {MAX_MONTHS}")
    svc = perinatal_service(session, principal, service_id)
    _, org, net = service_of(session, service_id)
    this = first_of_month(local_date((clock or SystemClock()).now()))
    span = [add_months(this, -k) for k in range(months - 1, -1, -1)]
    reviews = latest_reviews(session, service_id, span[0], span[-1])
    limits = thresholds()
    rows = []
    for m in MEASURES:
        limit = limits.get(m.key)
        cells = []
        for month in span:
            r = reviews.get(month)
            cells.append({"month": month, **_cell(m, r.measures.get(m.key) if r else None, limit)})
        rows.append({**m.as_dict(), "threshold": limit.text if limit else None, "cells": cells})
    return {
        "service": {"id": svc.id, "name": svc.name, "kind": svc.kind},
        "organisation": {"name": org.name},
        "network": {"name": net.name, "code": net.code},
        "months": [
            {
                "month": month,
                "label": month.strftime("%b %Y"),
                "version": reviews[month].version if month in reviews else None,
                "reviewed_on": reviews[month].reviewed_on if month in reviews else None,
            }
            for month in span
        ],
        "measures": rows,
        "outside": sum(1 for r in rows for c in r["cells"] if c["outside"]),
    }


def review_form(session: Session, principal: Principal, service_id: int, month: date) -> dict[str, Any]:
    """The measures, with the latest recorded values of ``month`` (its first day) as the form's values."""
    svc = perinatal_service(session, principal, service_id)
    month = first_of_month(month)
    latest = latest_reviews(session, service_id, month, month).get(month)
    limits = thresholds()
    values = {}
    if latest is not None:
        for key, value in latest.measures.items():
            m = BY_KEY.get(key)
            if m is not None:
                values[key] = ("yes" if value else "no") if m.type == "yesno" else show_value(m, value).rstrip("%")
    return {
        "service": {"id": svc.id, "name": svc.name, "kind": svc.kind},
        "month": month,
        "version": latest.version if latest else 0,
        "reviewed_on": latest.reviewed_on if latest else None,
        "values": values,
        "measures": [{**m.as_dict(), "threshold": limits[m.key].text if m.key in limits else None} for m in MEASURES],
    }


def staff_networks(principal: Principal) -> tuple[bool, set[int], set[int], set[int]]:
    """(everywhere, network ids, organisation ids, service ids) where ``principal`` holds a staff role."""
    everywhere = False
    nets: set[int] = set()
    orgs: set[int] = set()
    svcs: set[int] = set()
    by_scope = {"network": nets, "organisation": orgs, "service": svcs}
    for g in principal.grants:
        if g.role not in STAFF:
            continue
        if g.scope == INSTALLATION:
            everywhere = True
        elif g.scope_id is not None:
            by_scope.get(g.scope, set()).add(g.scope_id)
    return everywhere, nets, orgs, svcs


def is_staff(principal: Principal) -> bool:
    """Whether ``principal`` holds a network staff role anywhere (the alerts page is theirs)."""
    return any(g.role in STAFF for g in principal.grants)


def open_alerts(session: Session, principal: Principal) -> list[dict[str, Any]]:
    """The measure alerts proposed to the network in the services where ``principal`` holds a
    staff role, oldest month first."""
    everywhere, nets, orgs, svcs = staff_networks(principal)
    if not (everywhere or nets or orgs or svcs):
        return []
    q = (
        select(MeasureAlert, Service, Organisation, Network)
        .join(Service, col(Service.id) == MeasureAlert.service_id)
        .join(Organisation, col(Organisation.id) == Service.organisation_id)
        .join(Network, col(Network.id) == Service.network_id)
        .where(MeasureAlert.status == PROPOSED)
        .order_by(col(MeasureAlert.month), col(MeasureAlert.id))
    )
    if not everywhere:
        q = q.where(
            col(Service.network_id).in_(nets) | col(Service.organisation_id).in_(orgs) | col(Service.id).in_(svcs)
        )
    out = []
    for alert, svc, org, net in session.exec(q):
        m = BY_KEY.get(alert.measure)
        out.append(
            {
                "id": alert.id,
                "service": {"id": svc.id, "name": svc.name},
                "organisation": org.name,
                "network": net.code,
                "month": alert.month,
                "month_label": alert.month.strftime("%B %Y"),
                "measure": alert.measure,
                "label": m.label if m else alert.measure,
                "value": _shown(alert),
                "threshold": alert.threshold,
                "review_id": alert.review_id,
            }
        )
    return out


def _shown(alert: MeasureAlert) -> str:
    m = BY_KEY.get(alert.measure)
    if m is None:
        return f"{alert.value:g}"
    return show_value(m, bool(alert.value) if m.type == "yesno" else alert.value)


def alert_title(alert: MeasureAlert) -> str:
    """The title of the concern a raised alert becomes."""
    m = BY_KEY.get(alert.measure)
    label = m.label if m else alert.measure
    return f"{label}: {_shown(alert)} in {alert.month.strftime('%B %Y')} (outside {alert.threshold})"
