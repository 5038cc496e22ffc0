"""Self-assessment declarations (000 s5.1, Appendix 2): standard sets, standards, returns.

A ``StandardSet`` is one library of standards for a service kind (e.g. Adult Critical Care),
versioned and effective from a date; a newer set supersedes it (``superseded_by_id``).
A ``SelfAssessment`` is one service's declaration for one programme year against one set;
its ``SelfAssessmentItem`` rows hold, per standard, what the service declared and what the
network validated. Nothing here decides anything: that is ``states/machines/selfassessment.py``.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from sqlalchemy import UniqueConstraint
from sqlmodel import Field

from models.tables import StatefulItem
from models.types import Table


class StandardSet(Table, table=True):
    __table_args__ = (UniqueConstraint("service_kind", "name", "version", name="uq_standardset_version"),)

    id: int | None = Field(default=None, primary_key=True)
    service_kind: str = Field(index=True)  # matches Service.kind, e.g. "Adult Critical Care"
    name: str
    version: str
    effective_from: date
    superseded_by_id: int | None = Field(default=None, foreign_key="standardset.id")


class Standard(Table, table=True):
    """One row of Appendix 2. Thresholds are percentages: Met if figure >= met_threshold,
    Partially Met if >= partly_threshold, else Unmet. No Partially Met band: criteria_partly None."""

    __table_args__ = (UniqueConstraint("set_id", "ref", name="uq_standard_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    set_id: int = Field(foreign_key="standardset.id", index=True)
    position: int = 0  # order in the spreadsheet
    ref: str
    descriptor: str
    criteria_met: str
    criteria_partly: str | None = None
    criteria_unmet: str
    met_threshold: float | None = None
    partly_threshold: float | None = None

    @property
    def has_partly_band(self) -> bool:
        return bool(self.criteria_partly and self.criteria_partly.strip()) or self.partly_threshold is not None

    @property
    def has_thresholds(self) -> bool:
        return self.met_threshold is not None


class SelfAssessment(StatefulItem, table=True):
    """One service's self-assessment declaration for a programme year (April-March)."""

    kind: ClassVar[str] = "selfassessment"

    service_id: int = Field(foreign_key="service.id", index=True)
    standard_set_id: int = Field(foreign_key="standardset.id")
    programme_year: int  # 2026 = programme year 2026-27
    circulated_on: date | None = None
    received_on: date | None = None
    validated_on: date | None = None
    achievement: float | None = None  # total achievement %, from the validated statuses


class SelfAssessmentItem(Table, table=True):
    """One standard of a returned self-assessment: declared by the service, validated by the network."""

    __table_args__ = (UniqueConstraint("assessment_id", "ref", name="uq_selfassessment_item"),)

    id: int | None = Field(default=None, primary_key=True)
    assessment_id: int = Field(foreign_key="selfassessment.id", index=True)
    ref: str
    self_status: str  # Met | Partially Met | Unmet
    figure: float | None = None
    comments: str = ""
    evidence_location: str = ""
    validated_status: str | None = None
    validation_note: str | None = None
