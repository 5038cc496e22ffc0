"""Which services to visit next: a documented, configurable weighting (000 s5.2).

The SOP says the network decides visits "by a weighting process" without fixing one. This
score is local policy; every weight is a ``Policy`` field (``PEERWATCH_WEIGHT_...``):

    score = weight_months_since_visit x months since the last visit held (never: never_visited_months)
          + weight_open_ir x open immediate risks + weight_open_sc x open serious concerns
          + weight_open_gc x open general concerns
          + weight_max_risk_score x the highest open 6x6 score
          + weight_achievement_gap x (100 - latest validated total achievement %), when a
            self-assessment has been validated (states/machines/selfassessment.py)

Three queries for a whole network, whatever its size.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlmodel import Session, col, func, select

from models.tables import Network, Organisation, Risk, Service, Visit
from states.errors import NotFound
from states.machines.selfassessment import latest_achievements
from states.policy import Policy

HELD = ("held", "feedback_given", "closed")
CLOSED_RISK = ("new", "closed", "withdrawn")


def candidates(
    session: Session,
    network_code: str,
    today: date,
    policy: Policy | None = None,
    achievement: dict[int, float] | None = None,
) -> list[dict[str, Any]]:
    """Services of a network ranked by weighting score, highest first, with the score's parts."""
    policy = policy or Policy.from_env()
    net = session.exec(select(Network).where(Network.code == network_code)).first()
    if net is None:
        raise NotFound(f"network {network_code!r} not found")
    services = list(session.exec(select(Service, Organisation).join(Organisation).where(Service.network_id == net.id)))
    ids = [s.id for s, _ in services]
    if achievement is None:
        achievement = latest_achievements(session, [i for i in ids if i is not None])
    last = dict(
        session.exec(
            select(Visit.service_id, func.max(Visit.visit_date))
            .where(col(Visit.service_id).in_(ids), col(Visit.state).in_(HELD))
            .group_by(col(Visit.service_id))
        ).all()
    )
    risks: dict[int, dict[str, int]] = defaultdict(lambda: {"IR": 0, "SC": 0, "GC": 0, "max_score": 0})
    for risk in session.exec(select(Risk).where(col(Risk.service_id).in_(ids), col(Risk.state).not_in(CLOSED_RISK))):
        risks[risk.service_id][risk.level] += 1
        if risk.impact and risk.likelihood:
            risks[risk.service_id]["max_score"] = max(
                risks[risk.service_id]["max_score"], risk.impact * risk.likelihood
            )
    upcoming = set(
        session.exec(
            select(Visit.service_id).where(
                col(Visit.service_id).in_(ids),
                col(Visit.state).in_(("proposed", "scheduled", "service_notified", "prepared")),
            )
        ).all()
    )
    out = []
    for svc, org in services:
        assert svc.id is not None  # a row read from the database has its key
        seen = last.get(svc.id)
        months = round((today - seen).days / 30.44, 1) if seen else policy.never_visited_months
        r = risks[svc.id]
        ach = (achievement or {}).get(svc.id)
        parts = {
            "months_since_visit": months * policy.weight_months_since_visit,
            "open_ir": r["IR"] * policy.weight_open_ir,
            "open_sc": r["SC"] * policy.weight_open_sc,
            "open_gc": r["GC"] * policy.weight_open_gc,
            "max_risk_score": r["max_score"] * policy.weight_max_risk_score,
            "achievement_gap": (100 - ach) * policy.weight_achievement_gap if ach is not None else 0.0,
        }
        out.append(
            {
                "service_id": svc.id,
                "service": svc.name,
                "kind": svc.kind,
                "trust": org.name,
                "last_visit": seen.isoformat() if seen else None,
                "open_ir": r["IR"],
                "open_sc": r["SC"],
                "open_gc": r["GC"],
                "max_risk_score": r["max_score"] or None,
                "visit_in_progress": svc.id in upcoming,
                "score": round(sum(parts.values()), 1),
                "parts": {k: round(v, 1) for k, v in parts.items()},
            }
        )
    return sorted(out, key=lambda c: (-c["score"], c["service"]))
