"""CQC maternity ratings as recorded."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from models import Organisation
from models.perinatal import CqcRating
from states.views.directory import organisation_by_name

CQC_FLAGS = ("warning_notice", "dhsc_nhse_review_request", "hsib_concern")


def cqc_ratings(session: Session, organisation: str | None = None) -> list[tuple[Any, ...]]:
    """Recorded CQC maternity ratings (of one Trust, by name), oldest first, with the events flagged."""
    q = (
        select(CqcRating, Organisation)
        .join(Organisation)
        .order_by(col(CqcRating.organisation_id), col(CqcRating.assessed_on), col(CqcRating.id))
    )
    if organisation:
        q = q.where(CqcRating.organisation_id == organisation_by_name(session, organisation).id)
    return [
        (
            r.id,
            o.name,
            r.service_id,
            r.assessed_on,
            r.overall,
            r.safe,
            r.effective,
            r.caring,
            r.responsive,
            r.well_led,
            ", ".join(f for f in CQC_FLAGS if getattr(r, f)) or None,
        )
        for r, o in session.exec(q)
    ]
