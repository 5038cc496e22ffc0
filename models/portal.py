"""What the Trusts enter themselves, through the portal (issue 16; DOMAIN.md "Who enters what").

- ``RiskResponse``: the organisation's formal response to an immediate risk or serious concern
  (000 s6), numbered per risk, with the Network Manager's judgement once made.
- ``Upload``: a file a Trust sent with something (a response, an action's evidence, an
  inaccuracy): its type as read from its content, its SHA-256, a version per (owner, filename).
- ``Recommendation``: what a report recommends, per standard or per risk or concern.
- ``ActionPlan`` (a stateful item, kind ``action_plan``), its ``PlanAction`` rows and their
  ``ActionMilestone`` dates: the service's plan answering the recommendations (000 s5.4, s6
  step 5; seed 001: outstanding actions carried forward into the next year's work plan).
- ``BoardReview``: a Trust board's monthly perinatal safety review with the Appendix 2 measures
  (seed 004), and ``MeasureAlert``: a measure outside its configured threshold, proposing a
  concern to the network.

Nothing here decides anything: ``states/`` does.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field

from models.tables import StatefulItem
from models.types import Table, UTCDateTime, utcnow


class RiskResponse(Table, table=True):
    """One formal response to an IR or SC, as the service submitted it (``number`` 1, 2, ...)."""

    __tablename__ = "risk_response"
    __table_args__ = (UniqueConstraint("risk_id", "number", name="uq_risk_response"),)

    id: int | None = Field(default=None, primary_key=True)
    risk_id: int = Field(foreign_key="risk.id", index=True)
    number: int
    text: str
    submitted_by: int = Field(foreign_key="account.id")
    submitted_name: str  # the account's name when it submitted
    submitted_role: str  # the role it acted in (chief-executive, medical-director, service-lead)
    submitted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    judgement: str | None = None  # adequate | inadequate, once the Network Manager judged it
    judged_by: int | None = Field(default=None, foreign_key="account.id")
    judged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Upload(Table, table=True):
    """A file sent through the portal, attached to ``owner_kind`` row ``owner_id``
    (risk_response | plan_action | accuracy_item | appeal | submission | ...), about the stateful
    item ``item_kind`` ``item_id`` (risk 5): who may see the item may download the file.
    ``content_type`` is what the bytes are (sniffed), never what the name or the browser said."""

    __table_args__ = (
        Index("ix_upload_owner", "owner_kind", "owner_id"),
        Index("ix_upload_item", "item_kind", "item_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    item_kind: str
    item_id: int
    owner_kind: str
    owner_id: int
    version: int = 1  # per (owner_kind, owner_id, filename): a file sent again is the next version
    filename: str
    content_type: str
    size: int
    sha256: str
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    uploaded_by: int = Field(foreign_key="account.id")
    uploaded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Recommendation(Table, table=True):
    """A report's recommendation: per standard (``standard_ref``) or per risk (``risk_id``)."""

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="report.id", index=True)
    text: str
    standard_ref: str | None = None
    risk_id: int | None = Field(default=None, foreign_key="risk.id")
    recorded_by: int | None = Field(default=None, foreign_key="account.id")
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ActionPlan(StatefulItem, table=True):
    """A service's action plan for a programme year: built by the service, agreed (or returned
    with comments) by the network, then updated quarterly until its actions are done."""

    __tablename__ = "action_plan"
    __table_args__ = (Index("ix_action_plan_service", "service_id", "programme_year"),)
    kind: ClassVar[str] = "action_plan"

    service_id: int = Field(foreign_key="service.id")
    title: str
    programme_year: int  # the year it starts (1 April), as the cycle counts them
    report_id: int | None = Field(default=None, foreign_key="report.id")
    risk_id: int | None = Field(default=None, foreign_key="risk.id")
    carried_from_id: int | None = Field(default=None, foreign_key="action_plan.id")
    comments: str | None = None  # the network's, when it returned the plan
    agreed_on: date | None = None


class PlanAction(Table, table=True):
    """One action of a plan: what, who owns it (a named person and their role), whether it is an
    interim action, and when it was completed, with what evidence."""

    __tablename__ = "plan_action"

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="action_plan.id", index=True)
    recommendation_id: int | None = Field(default=None, foreign_key="recommendation.id")
    text: str
    owner_name: str
    owner_role: str = "service-lead"
    interim: bool = False
    status: str = "open"  # open | done | carried (into a later plan: carried_to_id)
    done_on: date | None = None
    evidence: str | None = None
    carried_to_id: int | None = Field(default=None, foreign_key="plan_action.id")
    position: int = 0


class ActionMilestone(Table, table=True):
    """A dated step of an action; chased once when its date passes undone."""

    __tablename__ = "action_milestone"
    __table_args__ = (Index("ix_action_milestone_open_due", "done_on", "due_on"),)

    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="plan_action.id", index=True)
    text: str
    due_on: date
    done_on: date | None = None
    chased_on: date | None = None


class BoardReview(Table, table=True):
    """A Trust board's monthly review of a maternity or neonatal service's safety measures
    (seed 004, Appendix 2): ``month`` is its first day; ``measures`` maps a measure's key to
    its value (numbers, yes/no, or text). Recorded again for a month, it is the next version."""

    __tablename__ = "board_review"
    __table_args__ = (UniqueConstraint("service_id", "month", "version", name="uq_board_review"),)

    id: int | None = Field(default=None, primary_key=True)
    service_id: int = Field(foreign_key="service.id", index=True)
    month: date
    version: int = 1
    measures: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reviewed_on: date  # the board meeting
    recorded_by: int = Field(foreign_key="account.id")
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class MeasureAlert(Table, table=True):
    """A board review's measure outside its threshold: a concern proposed to the network, which
    raises one (``concern_id``) or dismisses the alert with a reason."""

    __tablename__ = "measure_alert"
    __table_args__ = (UniqueConstraint("service_id", "month", "measure", name="uq_measure_alert"),)

    id: int | None = Field(default=None, primary_key=True)
    service_id: int = Field(foreign_key="service.id", index=True)
    month: date
    measure: str
    value: float
    threshold: str  # as configured, e.g. "< 90"
    review_id: int = Field(foreign_key="board_review.id")
    status: str = "proposed"  # proposed | raised | dismissed
    concern_id: int | None = Field(default=None, foreign_key="perinatalconcern.id")
    decided_by: int | None = Field(default=None, foreign_key="account.id")
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reason: str | None = None
