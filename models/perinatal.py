"""Perinatal quality surveillance tables (seed 004): concerns on the escalation ladder, CQC
maternity ratings as recorded, and Maternity Safety Support Programme (MSSP) cases.

Nothing here decides anything: the ladder is ``states/machines/perinatal.py``, MSSP entry and exit
``states/machines/mssp.py``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field

from models.tables import StatefulItem
from models.types import Table, UTCDateTime, utcnow


class PerinatalConcern(StatefulItem, table=True):
    """A perinatal clinical quality concern about a maternity or neonatal service (004 Principle 5).

    ``state`` is the level that holds it: provider, lms_ics, regional or national.
    """

    kind: ClassVar[str] = "perinatal"

    service_id: int = Field(foreign_key="service.id", index=True)
    title: str
    raised_on: date
    source: str | None = None  # the intelligence that prompted it (dashboard, HSIB, CQC, survey, ...)
    # [{"level", "name", "on", "by", "trigger", "note"}, ...] oldest first
    level_history: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # regional referrals: [{"to": "jsog" | "cqc_inspection", "on", "by", "note"}]
    referrals: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # what the forums decided, as the network office recorded it (the office does not decide):
    # [{"level", "forum", "decision", "decided_on", "decided_by", "agreed_with", "recorded_by", "recorded_on", "note"}]
    forum_decisions: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    last_board_review_on: date | None = None
    board_reviews: int = 0
    closed_reason: str | None = None


class CqcRating(Table, table=True):
    """One CQC assessment of a Trust's maternity services, with the events recorded beside it.

    Ratings are ``Outstanding``, ``Good``, ``Requires Improvement`` or ``Inadequate``.
    """

    __table_args__ = (Index("ix_cqcrating_org_date", "organisation_id", "assessed_on"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id")
    service_id: int | None = Field(default=None, foreign_key="service.id", index=True)
    assessed_on: date
    overall: str
    safe: str
    effective: str | None = None
    caring: str | None = None
    responsive: str | None = None
    well_led: str
    warning_notice: bool = False  # the CQC issued a warning notice
    dhsc_nhse_review_request: bool = False  # DHSC or NHSE/I requested a review of services or inquiry
    hsib_concern: bool = False  # identified to the CQC with concerns by HSIB
    recorded_by: str
    recorded_role: str
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    note: str | None = None


class MsspCase(StatefulItem, table=True):
    """A Trust's maternity services referred to or in the Maternity Safety Support Programme (004 Principle 4)."""

    kind: ClassVar[str] = "mssp"

    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    service_id: int | None = Field(default=None, foreign_key="service.id")
    entered_on: date | None = None
    entry_rating_id: int | None = Field(default=None, foreign_key="cqcrating.id")
    entry_criteria: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # the ratings at entry, which the exit is measured against: {"assessed_on", "overall", "safe", "well_led", ...}
    baseline: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # later assessments seen while in the programme: [{"rating_id", "assessed_on", "safe", "well_led", "exit"}]
    assessments: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    referred_on: date | None = None  # referred to the MSSCG for a decision on entry
    exit_proposed_on: date | None = None  # the exit criterion was met; the MSSCG decides
    # the MSSCG's decisions as recorded: [{"question": "entry" | "exit", "decision", "forum", "decided_by",
    # "decided_on", "recorded_by", "recorded_role", "recorded_on", "note"}]
    decisions: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    exited_on: date | None = None
    exit_rating_id: int | None = Field(default=None, foreign_key="cqcrating.id")
    closed_reason: str | None = None
