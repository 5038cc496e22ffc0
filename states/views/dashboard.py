"""The Network Manager's morning page as data, one network at a time: the register's summary
(``register.summary``) and the submissions received late in the last year, as recorded at
receipt. ``notifications/dashboard.py`` renders it; the entry points (``flows/site.py``) put the
two together."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlmodel import Session

from models.installation import ROW_ID, Installation
from states.machines.lateness import received_late
from states.views.register import AGE_BUCKETS, UPCOMING_WORKING_DAYS, summary


def network_page(session: Session, today: date, code: str, name: str) -> dict[str, Any]:
    """Everything one network's page shows; every table whole (the page decides how much to list)."""
    data = summary(session, today, code)
    data["received_late"] = received_late(session, code, since=today - timedelta(days=365))  # as recorded at receipt
    data.update(
        {
            "network": {"code": code, "name": name},
            "age_buckets": [b for b, _ in AGE_BUCKETS],
            "working_days": UPCOMING_WORKING_DAYS,
            "training": _training(session),  # a training database says so on every page
        }
    )
    return data


def _training(session: Session) -> bool:
    row = session.get(Installation, ROW_ID)
    return bool(row is not None and row.training)
