"""Benchmark databases, written fast with bulk core INSERTs straight into the tables.

Rows are valid as the engine would have left them: each open item is in a state that owns
its one open deadline, at version 1, with aware UTC timestamps (through the tables'
``UTCDateTime`` columns) dated before the as-of day; each deadline's date follows from the
item's own dates by the kind's rule (working days from ``states.calendar``, weeks by
``add_weeks``, lengths from ``states.policy``); services and contacts come from
``cli.seed.seed_reference``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from cli.seed import seed_reference
from models import Complaint, Deadline, Network, Report, Risk, Visit, init_db
from states.calendar import calendar_for
from states.machines.risk import FORMAL_NOTIFICATION_WORKING_DAYS, RESPONSE_WORKING_DAYS
from states.policy import Policy

AS_OF = date(2025, 3, 12)  # a Wednesday, no bank holiday near it
CHUNK = 5_000
POLICY = Policy()  # the defaults, whatever the environment says

# The items NOT due, by (kind, state, the deadline that state owns, share): a mixed population.
NOT_DUE_MIX = (
    ("risk", "awaiting_response", "response", 0.30),
    ("risk", "monitoring", "monitoring_review", 0.06),
    ("risk", "work_programme", "monitoring_review", 0.04),
    ("risk", "identified", "formal_notification", 0.05),
    ("visit", "prepared", "visit_day", 0.20),
    ("report", "drafting", "report_due", 0.15),
    ("complaint", "received", "acknowledgement", 0.20),
)
# The due items: each fires a trigger through the engine when the sweep meets it.
DUE_MIX = (
    ("risk", "awaiting_response", "response", 0.8),  # -> no_response -> chased
    ("risk", "chased", "chase_response", 0.2),  # -> still_no_response -> escalated
)
MODELS = {"risk": Risk, "visit": Visit, "report": Report, "complaint": Complaint}


@dataclass(frozen=True)
class Built:
    path: Path
    open_items: int
    due: int
    by_kind: dict[str, int]


class Days:
    """Consecutive working days around the as-of day (ENG), so ``at(k)`` is k working days away."""

    def __init__(self, as_of: date, ahead: int = 260, behind: int = 120) -> None:
        cal = calendar_for("ENG")
        if not cal.is_working_day(as_of):
            raise ValueError(f"the as-of day {as_of} must be a working day")
        self.days = [cal.subtract_working_days(as_of, k) for k in range(behind, 0, -1)]
        self.days += [as_of] + [cal.add_working_days(as_of, k) for k in range(1, ahead + 1)]
        self.zero = behind

    def at(self, k: int) -> date:
        return self.days[self.zero + k]


def _utc(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _counts(total: int, mix: tuple[tuple[str, str, str, float], ...]) -> list[int]:
    out = [int(total * share) for *_, share in mix]
    out[0] += total - sum(out)
    return out


def _rows(
    kind: str,
    state: str,
    deadline: str,
    j: int,
    is_due: bool,
    item_id: int,
    ref: dict[str, list[int]],
    days: Days,
    stamp: datetime,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One item and its open deadline, consistent with each other and with the as-of day."""
    base = {"id": item_id, "state": state, "version": 1, "created_at": stamp, "updated_at": stamp}
    service = ref["services"][j % len(ref["services"])]
    remind_wd = POLICY.reminder_working_days
    if kind == "risk":
        level = "GC" if state == "work_programme" else ("IR" if j % 3 == 0 else "SC")
        response = RESPONSE_WORKING_DAYS.get(level, 0)
        if state == "awaiting_response":  # response due `response` working days after the letter
            k = -1 - j % 10 if is_due else 1 + j % (response - 1)
            notified = k - response
        elif state == "chased":  # chased when the response passed; escalation 5 working days later
            k = -1 - j % 10
            notified = k - POLICY.chase_response_working_days - response
        elif state == "identified":  # formal letter due 5 working days after the visit
            k = 1 + j % FORMAL_NOTIFICATION_WORKING_DAYS
            notified = None
        else:  # monitoring / work programme: reviewed every `monitoring_weeks`
            k = 1 + j % (POLICY.monitoring_weeks * 5 - 1)
            notified = None if level == "GC" else -40
        visit_k = (
            k - FORMAL_NOTIFICATION_WORKING_DAYS
            if state == "identified"
            else ((notified if notified is not None else -60) - FORMAL_NOTIFICATION_WORKING_DAYS)
        )
        visit = days.at(visit_k)
        due_on = days.at(k)
        remind_on = (
            days.at(k - remind_wd) if deadline in ("response", "monitoring_review", "formal_notification") else None
        )
        item = {
            **base,
            "service_id": service,
            "level": level,
            "title": f"Bench concern {item_id}: staffing below the standard on nights",
            "standard_ref": f"T-{j % 40 + 1}",
            "identified_on": visit,
            "visit_date": visit,
            "formal_notification_on": days.at(notified) if notified is not None else None,
            "impact": 3,
            "likelihood": 2,
            "doctors_in_training": False,
            "inadequate_responses": 0,
            "closed_reason": None,
            "visit_id": None,
        }
    elif kind == "visit":  # prepared: the visit day is the open deadline
        due_on, remind_on = days.at(1 + j % 250), None
        item = {
            **base,
            "service_id": service,
            "visit_date": due_on,
            "mode": "in_person",
            "reason": "weighting score",
            "prep_session": "held",
            "panel_confirmed": True,
            "evidence_received": True,
            "postponements": 0,
            "closed_reason": None,
        }
    elif kind == "report":  # drafting: due `report_weeks` after the visit (its basis date)
        k = 1 + j % 30  # 30 working days ahead is well inside the 8 weeks
        due_on, remind_on = days.at(k), days.at(k - remind_wd)
        basis = due_on - timedelta(weeks=POLICY.report_weeks)
        item = {
            **base,
            "service_id": service,
            "visit_id": None,
            "basis_date": basis,
            "issue": 1,
            "compliance": [],
            "positives": [],
            "summary": None,
            "approved_on": None,
            "distributed_on": None,
            "published_on": None,
            "reissued_on": None,
        }
    else:  # complaint received: acknowledgement due 5 working days after receipt
        k = 1 + j % POLICY.complaint_acknowledge_working_days
        due_on, remind_on = days.at(k), None
        item = {
            **base,
            "network_id": ref["networks"][j % len(ref["networks"])],
            "service_id": service,
            "category": "arrangements",
            "owner_role": "network-office",
            "complainant_name": f"Complainant {item_id}",
            "complainant_email": f"complainant{item_id}@example.org",
            "summary": "The visit date moved twice.",
            "received_on": days.at(k - POLICY.complaint_acknowledge_working_days),
            "about_person": False,
            "outcome": None,
        }
    as_of = days.at(0)
    dl = {
        "kind": kind,
        "item_id": item_id,
        "name": deadline,
        "due_on": due_on,
        "remind_on": remind_on,
        "reminded": remind_on is not None and remind_on <= as_of,
        "due_day_notified": False,
        "status": "open",
        "paused_remaining": None,
        "nation": "ENG",
        "created_at": stamp,
    }
    return item, dl


def build(path: Path, open_items: int, due: int, as_of: date = AS_OF) -> Built:
    """A fresh SQLite file with ``open_items`` open items, ``due`` of them due on ``as_of``."""
    if path.exists():
        path.unlink()
    db = init_db(f"sqlite:///{path}")
    with Session(db) as s:
        services = list(seed_reference(s).values())
        s.commit()
        networks = [n.id for n in s.exec(select(Network).order_by(Network.id)) if n.id is not None]
    ref = {"services": services, "networks": networks}
    days = Days(as_of)
    stamp = _utc(days.at(-1))  # every item last changed the working day before
    by_kind: dict[str, int] = {}
    groups = [(m, n, True) for m, n in zip(DUE_MIX, _counts(due, DUE_MIX), strict=True)]
    groups += [(m, n, False) for m, n in zip(NOT_DUE_MIX, _counts(open_items - due, NOT_DUE_MIX), strict=True)]
    with db.begin() as conn:
        for (kind, state, deadline, _share), n, is_due in groups:
            model = MODELS[kind]
            first = (conn.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {model.__tablename__}").scalar() or 0) + 1
            for start in range(0, n, CHUNK):
                pairs = [
                    _rows(kind, state, deadline, j, is_due, first + j, ref, days, stamp)
                    for j in range(start, min(n, start + CHUNK))
                ]
                conn.execute(model.__table__.insert(), [p[0] for p in pairs])  # type: ignore[attr-defined]
                conn.execute(Deadline.__table__.insert(), [p[1] for p in pairs])  # type: ignore[attr-defined]
            by_kind[kind] = by_kind.get(kind, 0) + n
    _finish(db)
    return Built(path, open_items, due, by_kind)


def identified_risks(path: Path, n: int, as_of: date = AS_OF) -> list[int]:
    """A fresh database with ``n`` IR/SC risks ``identified`` (formal notification open)."""
    if path.exists():
        path.unlink()
    db = init_db(f"sqlite:///{path}")
    with Session(db) as s:
        ref = {"services": list(seed_reference(s).values()), "networks": []}
        s.commit()
    days = Days(as_of)
    stamp = _utc(days.at(-1))
    pairs = [_rows("risk", "identified", "formal_notification", j, False, j + 1, ref, days, stamp) for j in range(n)]
    with db.begin() as conn:
        conn.execute(Risk.__table__.insert(), [p[0] for p in pairs])  # type: ignore[attr-defined]
        conn.execute(Deadline.__table__.insert(), [p[1] for p in pairs])  # type: ignore[attr-defined]
    _finish(db)
    return [j + 1 for j in range(n)]


def _finish(db: Any) -> None:
    with db.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()


def copy(src: Path, dst: Path) -> Path:
    """A consistent copy through SQLite's backup API."""
    if dst.exists():
        dst.unlink()
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    with b:
        a.backup(b)
    a.close()
    b.close()
    return dst
