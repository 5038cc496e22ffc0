"""SQLModel tables. Portable SQL only: the same schema runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import JSON, Column, Index, LargeBinary, UniqueConstraint, text
from sqlalchemy.orm import declared_attr
from sqlmodel import Field

from models.types import Table, UTCDateTime, utcnow


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, **kw)


class Network(Table, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, index=True)
    name: str
    cycle: str = "annual"  # annual (West Midlands) | biennial (Cheshire & Mersey)
    programme: str | None = None  # programme file (states/programmes); default by cycle


class Organisation(Table, table=True):
    """An NHS Trust or other provider. ``nation`` picks the bank-holiday calendar."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    nation: str = "ENG"  # ENG | WLS | SCT | NIR


class Service(Table, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str
    kind: str  # Major Trauma Centre, Trauma Unit, Burns, Spine, Adult Critical Care, ...
    pathway: str | None = None  # the shared (clinical) pathway it belongs to, for panel conflicts
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    network_id: int = Field(foreign_key="network.id", index=True)


class Contact(Table, table=True):
    """A person who receives letters, found by role at the most specific level.

    Scope: a service (Service Lead), an organisation (Chief Executive), a network
    (Network Manager, Commissioning Lead, CQC) or, with all three empty, national.
    """

    id: int | None = Field(default=None, primary_key=True)
    role: str = Field(index=True)
    name: str
    email: str
    service_id: int | None = Field(default=None, foreign_key="service.id")
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id")
    network_id: int | None = Field(default=None, foreign_key="network.id")
    # Effective dates (Europe/London): letters go to the holder from ``valid_from`` until the day
    # before ``valid_until`` (retired or replaced then); ``replaces_id`` links an edit's new row
    # to the one it replaces, so the history is kept (states/services/contacts.py).
    valid_from: date | None = None
    valid_until: date | None = None
    replaces_id: int | None = Field(default=None, foreign_key="contact.id")


class StatefulItem(Table):
    """Columns every state-machine-driven row has. ``version`` is checked on UPDATE."""

    kind: ClassVar[str]

    id: int | None = Field(default=None, primary_key=True)
    state: str = Field(index=True)
    version: int = 1
    created_at: datetime = _ts()
    updated_at: datetime = _ts()

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.version}  # type: ignore[attr-defined]


class Risk(StatefulItem, table=True):
    """An immediate risk (IR), serious concern (SC) or general concern (GC). 000 s6."""

    kind: ClassVar[str] = "risk"

    service_id: int = Field(foreign_key="service.id", index=True)
    level: str  # IR | SC | GC
    title: str
    standard_ref: str | None = None
    identified_on: date
    visit_date: date | None = None
    formal_notification_on: date | None = None
    impact: int | None = None
    likelihood: int | None = None
    doctors_in_training: bool = False
    inadequate_responses: int = 0
    closed_reason: str | None = None
    visit_id: int | None = Field(default=None, foreign_key="visit.id", index=True)


class Visit(StatefulItem, table=True):
    """A peer review visit to one service (000 s5.2-5.3)."""

    kind: ClassVar[str] = "visit"

    service_id: int = Field(foreign_key="service.id", index=True)
    visit_date: date | None = None
    mode: str = "in_person"  # in_person | virtual
    reason: str | None = None  # why proposed: weighting score, self-assessment validation
    prep_session: str | None = None  # offered | held | declined
    panel_confirmed: bool = False
    evidence_received: bool = False
    postponements: int = 0
    closed_reason: str | None = None


class Reviewer(Table, table=True):
    """A person who can sit on a panel, with what the conflict rules need to know."""

    id: int | None = Field(default=None, primary_key=True)
    name: str
    email: str
    discipline: str  # clinician | nurse | ahp | management | commissioning | service_user
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id")
    network_id: int | None = Field(default=None, foreign_key="network.id")
    pathways: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    trained: bool = False
    retired_on: date | None = None  # no longer invited onto panels from this date (states/services/contacts.py)


class PanelMember(Table, table=True):
    __table_args__ = (UniqueConstraint("visit_id", "reviewer_id", name="uq_panel_member"),)

    id: int | None = Field(default=None, primary_key=True)
    visit_id: int = Field(foreign_key="visit.id", index=True)
    reviewer_id: int = Field(foreign_key="reviewer.id")
    observer: bool = False
    declared_on: date | None = None  # conflict-of-interest declaration returned
    declared_conflicts: str | None = None


class Report(StatefulItem, table=True):
    """The written report of a visit or of a self-assessment (000 s5.1, s5.4, Appendix 3)."""

    kind: ClassVar[str] = "report"

    service_id: int = Field(foreign_key="service.id", index=True)
    visit_id: int | None = Field(default=None, foreign_key="visit.id", index=True)
    basis_date: date  # the visit date, or the date the self-assessment was received
    issue: int = 1  # re-issued after an upheld appeal
    compliance: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    positives: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    summary: str | None = None
    approved_on: date | None = None
    distributed_on: date | None = None
    published_on: date | None = None
    reissued_on: date | None = None


class AccuracyItem(Table, table=True):
    """One inaccuracy the service states at the factual accuracy check, and both decisions."""

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="report.id", index=True)
    text: str
    manager_decision: str | None = None  # accepted | rejected (Network Manager)
    manager_actor: str | None = None
    manager_user_id: int | None = None  # the two deciders are compared by account, not by name
    lead_decision: str | None = None  # accepted | rejected (Regional Network Lead)
    lead_actor: str | None = None
    lead_user_id: int | None = None

    @property
    def outcome(self) -> str | None:
        """Accepted only if both accept; rejected if either rejects; None while undecided."""
        if self.manager_decision is None or self.lead_decision is None:
            return None
        return "accepted" if self.manager_decision == self.lead_decision == "accepted" else "rejected"


class Attachment(Table, table=True):
    """A file that travels with an outbox message (the report PDF, the Appendix 2 spreadsheet).

    The transition stores which renderer makes it and its data, frozen (``document``, JSON with
    dates tagged, as a letter's context); the dispatcher renders it when it sends the letter and
    keeps the bytes it sent in ``data``."""

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(index=True)
    filename: str
    content_type: str
    data: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    renderer: str | None = None  # notifications.attachments.RENDERERS: report_pdf, selfassessment_xlsx
    document: str | None = None  # the renderer's data, frozen (states.engine.letters.freeze)


class Appeal(StatefulItem, table=True):
    """A Trust's appeal against a published report's conclusions (000 s8.1)."""

    kind: ClassVar[str] = "appeal"

    report_id: int = Field(foreign_key="report.id", index=True)
    service_id: int = Field(foreign_key="service.id", index=True)
    appellant_contact_id: int = Field(foreign_key="contact.id")
    submitted_on: date
    statement: str
    grounds: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    subgroup: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    outcome: str | None = None  # upheld | partly_upheld | not_upheld
    decision: str | None = None
    decided_on: date | None = None


class Complaint(StatefulItem, table=True):
    """A complaint about the process or conduct of a review (000 s8.2)."""

    kind: ClassVar[str] = "complaint"

    network_id: int = Field(foreign_key="network.id", index=True)
    service_id: int | None = Field(default=None, foreign_key="service.id")
    category: str  # arrangements | conduct | report_drafting | factual_accuracy
    owner_role: str  # network-office | network-manager (routed by category)
    complainant_name: str
    complainant_email: str
    summary: str
    received_on: date
    about_person: bool = False  # about a person rather than the conduct of their role (not acceptable)
    outcome: str | None = None


class RefusedAttempt(Table, table=True):
    """An attempt the rules refused: who tried what, when, and why. Nothing else was stored."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    item_id: int | None = None
    trigger: str
    actor: str
    role: str
    at: datetime = Field(sa_type=UTCDateTime)
    reason: str
    user_id: int | None = None  # the account that tried (None: nobody could be identified)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Milestone(Table, table=True):
    """A dated step of the action plan agreed for a risk (000 s6 step 5)."""

    __table_args__ = (Index("ix_milestone_open_due", "done_on", "due_on"),)

    id: int | None = Field(default=None, primary_key=True)
    risk_id: int = Field(foreign_key="risk.id", index=True)
    due_on: date
    text: str
    done_on: date | None = None
    owner_role: str = "service-lead"  # owned by the service: the contact role chased when it is overdue
    done_by: str | None = None
    chased_on: date | None = None  # the sweep sent its overdue letter (once)


class DeadlineStatus(StrEnum):
    OPEN = "open"
    PAUSED = "paused"
    CLOSED = "closed"  # the state it belonged to was left
    FIRED = "fired"  # passed: the sweep sent its overdue letter; still owed until the item moves on


# Deadlines still waiting on someone: open, paused, or passed with the overdue letter sent.
# Leaving the state closes them all (unless the rule runs through the new state).
OUTSTANDING = (DeadlineStatus.OPEN, DeadlineStatus.PAUSED, DeadlineStatus.FIRED)


class Deadline(Table, table=True):
    """A pending date on an item. The sweep's work is a range scan on (status, due_on)."""

    __table_args__ = (
        Index("ix_deadline_status_due", "status", "due_on"),
        Index("ix_deadline_status_remind", "status", "remind_on"),
        Index("ix_deadline_item", "kind", "item_id"),
        # "My work" (states/views/work.py): a kind's outstanding deadlines in due-date order, read
        # only as far as a page needs. Partial (closed ones are most of the table and never
        # shown); the condition is written the way the query writes it, so SQLite uses it.
        Index(
            "ix_deadline_open_due",
            "kind",
            "due_on",
            "item_id",
            sqlite_where=text("status != 'closed'"),
            postgresql_where=text("status != 'closed'"),
        ),
        # the same by deadline name: a role owns a kind's deadlines by name, and a name with few
        # open deadlines is then a short range, not a scan of the kind's (revision 0014)
        Index(
            "ix_deadline_open_name_due",
            "kind",
            "name",
            "due_on",
            "item_id",
            sqlite_where=text("status != 'closed'"),
            postgresql_where=text("status != 'closed'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    item_id: int
    name: str
    due_on: date
    remind_on: date | None = None
    reminded: bool = False
    due_day_notified: bool = False
    status: str = DeadlineStatus.OPEN
    paused_remaining: int | None = None  # working days left when the clock stopped
    nation: str = "ENG"
    created_at: datetime = _ts()


class AuditEvent(Table, table=True):
    """Append-only: one row per fired trigger, refused nothing, rewritten never."""

    __table_args__ = (Index("ix_audit_item", "kind", "item_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    item_id: int
    at: datetime = Field(sa_type=UTCDateTime)  # effective time: the clock the action ran on
    actor: str  # the account's display name at the time
    role: str
    trigger: str
    from_state: str | None
    to_state: str
    note: str | None = None
    version: int
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str = ""  # the hash of the event before this one: a tamper-evident chain
    hash: str = ""  # HMAC-SHA-256 under the key ``key_id`` (plain SHA-256 before revision 0011)
    user_id: int | None = None  # the account that acted (None only for events before revision 0011)
    recorded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # wall clock, UTC
    key_id: str | None = None  # which audit key signed it (None: unkeyed, before revision 0011)


class AuditHead(Table, table=True):
    """The chain's head: one row, locked by each append so the chain never forks."""

    __tablename__ = "audit_head"
    id: int | None = Field(default=None, primary_key=True)
    hash: str = ""
    events: int = 0


class Proposal(Table, table=True):
    """A four-eyes trigger proposed by one person, waiting for a second to confirm it."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    item_id: int
    trigger: str
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    note: str | None = None
    actor: str
    role: str
    at: datetime = Field(sa_type=UTCDateTime)
    item_version: int
    user_id: int | None = None  # four eyes compares accounts, not names


class OutboxStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # gave up after the configured number of tries: an incident
    UNDELIVERABLE = "undeliverable"  # nobody holds the role: an incident


IN_DOUBT = "in doubt: "  # last_error prefix of a row interrupted mid-send whose delivery is unknown


def is_in_doubt(row: OutboxMessage) -> bool:
    """A row left ``sending`` by a crash whose delivery the mail service cannot tell (SMTP)."""
    return row.status == OutboxStatus.SENDING and (row.last_error or "").startswith(IN_DOUBT)


class OutboxMessage(Table, table=True):
    """A letter written in the transition's transaction; the dispatcher sends it once.

    The transaction stores what the letter says, frozen: ``context`` (JSON, dates tagged) and
    the template's name. The dispatcher renders it when it sends it and keeps the rendered
    ``subject``, ``body_text`` and ``body_html`` on the row: what was sent, word for word
    (``notifications.render.rendered`` shows a letter not yet sent).
    """

    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_outbox_key"),
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str
    kind: str
    item_id: int
    template: str
    category: str = "letter"  # letter (one per item) | reminder, chase (combined per person) | incident
    context: str | None = None  # the letter's frozen context, JSON (states.engine.letters.freeze)
    subject: str | None = None  # rendered by the dispatcher: None until it sends the letter
    body_text: str | None = None
    body_html: str | None = None
    to: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    cc: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = OutboxStatus.QUEUED
    attempts: int = 0
    next_attempt_at: datetime = _ts()
    last_error: str | None = None
    created_at: datetime = _ts()
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    message_id: str | None = None
    resend_at: datetime | None = Field(
        default=None, sa_type=UTCDateTime
    )  # in doubt after a crash: resent then, same Message-ID
    resent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # when it was resent after a crash mid-send
