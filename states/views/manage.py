"""What the web's panel, report drafting and factual-accuracy pages show: a visit's panel, a
report's draft and its inaccuracies with both decisions, and which of the page's triggers the
person may fire in the item's state now (the permission table in force, the item's scope).
Read-only; the triggers fire through ``states.services.acting``."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from models.tables import AccuracyItem, PanelMember, Report, Reviewer, StatefulItem, Visit
from states.errors import PermissionDenied
from states.machines.spec import get_spec
from states.machines.visit import DISCIPLINE_NAMES
from states.principal import Principal
from states.scope import service_context
from states.views.forms import permission_table
from states.views.item import staff_at
from states.views.work import get_visible


def firable(
    session: Session, principal: Principal, kind: str, row: StatefulItem, triggers: tuple[str, ...]
) -> set[str]:
    """Those of ``triggers`` the machine takes from the item's state and ``principal`` holds a
    role for in the item's scope (the engine still checks guards and parameters when fired)."""
    spec = get_spec(kind)
    table = permission_table(session)
    where = spec.recipient_scope(session, row)
    out = set()
    for trigger in spec.allowed_from(row.state):
        if trigger not in triggers:
            continue
        roles = table.roles(spec, trigger, spec.rows_for(trigger, row.state))
        try:
            principal.choose(roles, where, f"fire {trigger!r} on {kind} {row.id}")
        except PermissionDenied:
            continue
        out.add(trigger)
    return out


def working_page(session: Session, principal: Principal, kind: str, item_id: int) -> StatefulItem:
    """The item behind one of the network's working pages (a visit's panel, a report's draft and
    its accuracy decisions): NotFound as for any item out of scope; PermissionDenied unless the
    principal holds a network role (or administers the installation) where the item sits. The
    Trust has its own pages (the portal's accuracy check and appeal), which show what it may see."""
    row = get_visible(session, principal, kind, item_id)
    if not staff_at(principal, get_spec(kind).recipient_scope(session, row)):
        raise PermissionDenied(
            f"this page is the network's working page for {kind} {item_id}: your pages are in the portal"
        )
    return row


def place(session: Session, row: Any) -> dict[str, Any]:
    """The item's service, Trust and network names."""
    return service_context(session, row)


def panel(session: Session, visit: Visit, today: date) -> dict[str, Any]:
    """The visit's panel (reviewer, discipline, observer, declaration) and the reviewers who
    could be invited (current, not on it; the engine refuses a conflicted one with its reason)."""
    members = list(
        session.exec(select(PanelMember).where(PanelMember.visit_id == visit.id).order_by(col(PanelMember.id)))
    )
    people = {r.id: r for r in session.exec(select(Reviewer).order_by(col(Reviewer.name)))}
    on = {m.reviewer_id for m in members}
    rows = []
    for m in members:
        r = people.get(m.reviewer_id)
        rows.append(
            {
                "reviewer_id": m.reviewer_id,
                "name": r.name if r else f"reviewer {m.reviewer_id}",
                "discipline": DISCIPLINE_NAMES.get(r.discipline, r.discipline) if r else "",
                "observer": m.observer,
                "declared_on": m.declared_on,
                "conflicts": m.declared_conflicts or "",
            }
        )
    free = [
        {
            "id": r.id,
            "name": r.name,
            "discipline": DISCIPLINE_NAMES.get(r.discipline, r.discipline),
            "trained": r.trained,
        }
        for r in people.values()
        if r.id not in on and (r.retired_on is None or r.retired_on > today)
    ]
    return {"members": rows, "candidates": free, "confirmed": bool(getattr(visit, "panel_confirmed", False))}


def draft(report: Report) -> dict[str, Any]:
    """A report's recorded compliance against each standard and its positive developments."""
    return {
        "compliance": [
            {
                "ref": c.get("ref", ""),
                "status": c.get("status", ""),
                "descriptor": c.get("descriptor", ""),
                "comment": c.get("comment", ""),
            }
            for c in report.compliance
        ],
        "positives": list(report.positives),
        "summary": report.summary or "",
    }


def accuracy(session: Session, report_id: int) -> list[dict[str, Any]]:
    """The inaccuracies the service stated, each with the Network Manager's and the Regional
    Lead's decisions and the outcome (accepted only if both accept)."""
    items = session.exec(select(AccuracyItem).where(AccuracyItem.report_id == report_id).order_by(col(AccuracyItem.id)))
    return [
        {
            "id": a.id,
            "text": a.text,
            "manager": a.manager_decision or "",
            "manager_actor": a.manager_actor or "",
            "lead": a.lead_decision or "",
            "lead_actor": a.lead_actor or "",
            "outcome": a.outcome or "undecided",
        }
        for a in items
    ]


__all__ = ["accuracy", "draft", "firable", "panel", "place"]
