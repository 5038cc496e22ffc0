"""Programme cycles: phases per network per programme year, document submissions, carry-forward."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field

from models.tables import StatefulItem
from models.types import Table, UTCDateTime, utcnow


class ProgrammePhase(StatefulItem, table=True):
    """One phase of a network's programme year: pending -> open -> complete or overdue."""

    __tablename__ = "programme_phase"
    __table_args__ = (UniqueConstraint("network_id", "programme_year", "key", name="uq_phase"),)
    kind: ClassVar[str] = "phase"

    network_id: int = Field(foreign_key="network.id", index=True)
    programme: str
    programme_year: int  # the April it starts in
    cycle_year: int
    quarter: str
    key: str
    title: str
    opens_on: date
    due_on: date


class PhaseQuarter(Table, table=True):
    """A network's own quarter for a step of its programme, from a programme year on (local
    policy where the SOP sets no quarter: states/services/cycle_quarters.py). History is kept: each
    change is a new row; the latest ``from_year`` not after a year applies to it."""

    __tablename__ = "phase_quarter"
    __table_args__ = (UniqueConstraint("network_id", "programme", "key", "from_year", name="uq_phase_quarter"),)
    id: int | None = Field(default=None, primary_key=True)
    network_id: int = Field(foreign_key="network.id", index=True)
    programme: str
    key: str
    quarter: str
    from_year: int  # the programme year (the April it starts in) it applies from
    set_by: str
    set_role: str
    set_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    note: str | None = None


class Submission(StatefulItem, table=True):
    """A document a Trust submits for a programme year (annual report, work plan, operational policy)."""

    __table_args__ = (
        UniqueConstraint("network_id", "organisation_id", "programme_year", "doc_type", name="uq_submission"),
    )
    kind: ClassVar[str] = "submission"

    network_id: int = Field(foreign_key="network.id", index=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    programme_year: int
    doc_type: str
    due_on: date
    phase_id: int | None = Field(default=None, foreign_key="programme_phase.id")
    information_requests: int = 0


class SubmissionFile(Table, table=True):
    """An evidence file, kept with its checksum; each resubmission is a new version."""

    __tablename__ = "submission_file"
    id: int | None = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submission.id", index=True)
    version: int
    filename: str
    sha256: str
    size: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CarryForward(Table, table=True):
    """An open concern or action carried into a new cycle: a link, not a copy."""

    __tablename__ = "carry_forward"
    __table_args__ = (
        UniqueConstraint("network_id", "cycle_starts", "kind", "item_id", name="uq_carry"),
        Index("ix_carry_network", "network_id", "cycle_starts"),
    )
    id: int | None = Field(default=None, primary_key=True)
    network_id: int = Field(foreign_key="network.id")
    cycle_starts: int  # programme year the new cycle starts
    kind: str
    item_id: int
    state_then: str
    carried_on: date


class Lateness(Table, table=True):
    """A thing a Trust or service sends, received after its deadline (or on time), recorded
    once when it arrives so it never changes later: a document submission, a self-assessment
    return, a factual-accuracy reply. Days late are counted from the deadline in force at the
    receipt (extensions included): calendar days, and working days by the item's nation's
    calendar (``states/calendar.py``). Written by the engine's transition, in its transaction
    (``states/machines/lateness.py``)."""

    __table_args__ = (Index("ix_lateness_item", "kind", "item_id"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str  # submission | selfassessment | report
    item_id: int
    what: str  # what was received, e.g. "Annual Report 2027-28", "factual accuracy reply"
    deadline: str  # the deadline's name, e.g. submission_due, return, accuracy_reply
    due_on: date
    received_on: date  # Europe/London date of receipt
    received_at: datetime = Field(sa_type=UTCDateTime)
    days_late: int  # calendar days after due_on (0 when on time)
    working_days_late: int  # working days after due_on by the nation's calendar (0 when on time)
    nation: str = "ENG"
    clock_paused: bool = False  # the deadline's clock was stopped at receipt: not late
