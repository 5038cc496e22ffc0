"""Shared learning (issue 16 item 10; seed 002 s3.5, s3.7): what the network's services can learn
from each other, as data, for the signed-in members of the network.

A member of a network is network staff with a grant for it (or for the whole installation) and a
Trust or commissioner user whose grants reach one of its services. Each network shows its
published reports (service, Trust, dates, the compliance figure) and compliance standard by
standard across its services (from each service's latest published report: how many services
Met, Partially Met, did not meet each standard). No person is named: no account, contact,
reviewer or actor, and none of the reports' free text (comments, summaries), which might name one.

Local policy: ``PEERWATCH_SHARED_LEARNING`` = ``on`` (the default: every network shares),
``off`` (none does: the page says so and the data is not found), or a comma-separated list of the
network codes that share. Read-only; a fixed number of queries whatever the number of reports.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import or_, select
from sqlmodel import Session

from models.selfassessment import Standard, StandardSet
from models.tables import Network, Organisation, Report, Service
from states.clock import Clock, local_date
from states.errors import InvalidInput, NotFound
from states.principal import INSTALLATION, NETWORK, Principal
from states.roles import NETWORK_ROLES
from states.views.portal import _services, portal_principal
from states.views.register import REPORT_WEIGHTS, report_achievement
from states.views.work import _table

SETTING = "PEERWATCH_SHARED_LEARNING"
STATUSES = ("Met", "Partially Met", "Unmet", "Not applicable")
_ON, _OFF = ("", "on", "true", "yes", "1", "all"), ("off", "false", "no", "0", "none")

_REPORT, _SVC, _ORG, _NET = _table(Report), _table(Service), _table(Organisation), _table(Network)
_STD, _SET = _table(Standard), _table(StandardSet)


def sharing() -> tuple[bool, frozenset[str]]:
    """(every network shares, the codes that share when not every one does), from the setting."""
    raw = (os.environ.get(SETTING) or "").strip()
    if raw.lower() in _ON:
        return True, frozenset()
    if raw.lower() in _OFF:
        return False, frozenset()
    codes = frozenset(c.strip() for c in raw.split(",") if c.strip())
    if not codes or any(not c.replace("-", "").replace("_", "").isalnum() for c in codes):
        raise InvalidInput(f"{SETTING}={raw!r}: use on, off, or a comma-separated list of network codes")
    return False, codes


def member_networks(session: Session, principal: Principal) -> list[Any]:
    """The networks the principal is a member of (id, code, name), by code."""
    staff = [g for g in principal.grants if g.role in NETWORK_ROLES]
    every = any(g.scope == INSTALLATION for g in staff)
    ids = {g.scope_id for g in staff if g.scope == NETWORK and g.scope_id is not None}
    ids |= {s.network_id for s in _services(session, portal_principal(principal).grants)}
    q = select(_NET.c.id, _NET.c.code, _NET.c.name).order_by(_NET.c.code)
    if not every:
        if not ids:
            return []
        q = q.where(_NET.c.id.in_(sorted(ids)))
    return list(session.execute(q))


def learning(session: Session, principal: Principal, clock: Clock, network_code: str | None = None) -> dict[str, Any]:
    """shared (bool), networks (each with its published reports and its standards across
    services), today. ``network_code``: that network only, NotFound unless the principal is a
    member and it shares (the same words whether it does not exist, is not theirs or does not share)."""
    today = local_date(clock.now())
    everyone, codes = sharing()
    nets = member_networks(session, principal)
    shared = [n for n in nets if everyone or n.code in codes]
    if network_code is not None:
        shared = [n for n in shared if n.code == network_code]
        if not shared:
            raise NotFound(f"network {network_code!r} not found")
    if not everyone and not codes:
        return {"shared": False, "networks": [], "today": today, "member": bool(nets)}
    rows = _reports(session, [n.id for n in shared])
    titles = _titles(session, {r.service_kind for r in rows})
    out = []
    for n in shared:
        mine = [r for r in rows if r.network_id == n.id]
        out.append(
            {
                "code": n.code,
                "name": n.name,
                "link": f"/learning/{n.code}",
                "reports": [_report(r, principal) for r in mine],
                "standards": _standards(mine, titles),
            }
        )
    return {"shared": True, "networks": out, "today": today, "member": bool(nets)}


def _reports(session: Session, network_ids: list[int]) -> list[Any]:
    if not network_ids:
        return []
    q = (
        select(
            _REPORT.c.id,
            _REPORT.c.basis_date,
            _REPORT.c.published_on,
            _REPORT.c.issue,
            _REPORT.c.compliance,
            _SVC.c.id.label("service_id"),
            _SVC.c.name.label("service"),
            _SVC.c.kind.label("service_kind"),
            _SVC.c.organisation_id,
            _SVC.c.network_id,
            _ORG.c.name.label("organisation"),
        )
        .select_from(
            _REPORT.join(_SVC, _SVC.c.id == _REPORT.c.service_id).join(_ORG, _ORG.c.id == _SVC.c.organisation_id)
        )
        .where(_REPORT.c.state == "published", _SVC.c.network_id.in_(network_ids))
        .order_by(_REPORT.c.published_on.desc(), _REPORT.c.id.desc())
    )
    return list(session.execute(q))


def _titles(session: Session, service_kinds: set[str]) -> dict[tuple[str, str], str]:
    """(service kind, standard ref) -> the standard's descriptor in the library (the latest set's)."""
    if not service_kinds:
        return {}
    q = (
        select(_SET.c.service_kind, _STD.c.ref, _STD.c.descriptor)
        .select_from(_STD.join(_SET, _SET.c.id == _STD.c.set_id))
        .where(or_(*(_SET.c.service_kind == k for k in sorted(service_kinds))))
        .order_by(_SET.c.effective_from, _SET.c.id)
    )
    return {(k, ref): text for k, ref, text in session.execute(q)}


def _report(r: Any, principal: Principal) -> dict[str, Any]:
    where = {"service_id": r.service_id, "organisation_id": r.organisation_id, "network_id": r.network_id}
    visible = any(g.covers(where) for g in principal.grants)
    return {
        "service": r.service,
        "service_kind": r.service_kind,
        "organisation": r.organisation,
        "basis_date": r.basis_date,
        "published_on": r.published_on,
        "issue": r.issue,
        "compliance": report_achievement(r.compliance or []),
        "standards": sum(1 for c in r.compliance or [] if c.get("status") in REPORT_WEIGHTS),
        "link": f"/items/report/{r.id}" if visible else None,  # another Trust's report page is not theirs
    }


def _standards(reports: list[Any], titles: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    """Per service kind and standard: how many services' latest published report found it Met,
    Partially Met, Unmet or not applicable, and the share met (Met 1, Partially Met 0.5)."""
    latest: dict[int, Any] = {}
    for r in reports:  # newest first: the first seen is the service's latest
        latest.setdefault(r.service_id, r)
    cells: dict[tuple[str, str], dict[str, int]] = {}
    for r in latest.values():
        for c in r.compliance or []:
            ref, status = str(c.get("ref") or "").strip(), c.get("status")
            if ref and status in STATUSES:
                counts = cells.setdefault((r.service_kind, ref), dict.fromkeys(STATUSES, 0))
                counts[status] += 1
    out = []
    for (kind, ref), counts in sorted(cells.items()):
        scored = sum(counts[s] for s in REPORT_WEIGHTS)
        share = round(100 * sum(counts[s] * w for s, w in REPORT_WEIGHTS.items()) / scored, 1) if scored else None
        out.append(
            {
                "service_kind": kind,
                "ref": ref,
                "title": titles.get((kind, ref), ""),
                "met": counts["Met"],
                "partially_met": counts["Partially Met"],
                "unmet": counts["Unmet"],
                "not_applicable": counts["Not applicable"],
                "services": sum(counts.values()),
                "compliance": share,
            }
        )
    return out
