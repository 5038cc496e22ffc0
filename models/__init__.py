"""What peerwatch stores: organisations, people, stateful items, deadlines, audit and outbox.

Tables are small and explicit. Every stateful row carries a ``version`` that SQLAlchemy
checks on UPDATE (optimistic locking), and every timestamp is timezone-aware UTC.
Nothing here decides a transition: that is ``states/``.
"""

from models.db import (
    database_url,
    get_engine,
    init_db,
    session_scope,
)
from models.tables import (
    OUTSTANDING,
    AccuracyItem,
    Appeal,
    Attachment,
    AuditEvent,
    AuditHead,
    Complaint,
    Contact,
    Deadline,
    DeadlineStatus,
    Milestone,
    Network,
    Organisation,
    OutboxMessage,
    OutboxStatus,
    PanelMember,
    Proposal,
    RefusedAttempt,
    Report,
    Reviewer,
    Risk,
    Service,
    StatefulItem,
    Visit,
)

__all__ = [
    "OUTSTANDING",
    "AccuracyItem",
    "Appeal",
    "Attachment",
    "AuditEvent",
    "AuditHead",
    "Complaint",
    "Contact",
    "Deadline",
    "DeadlineStatus",
    "Milestone",
    "Network",
    "Organisation",
    "OutboxMessage",
    "OutboxStatus",
    "PanelMember",
    "Proposal",
    "RefusedAttempt",
    "Report",
    "Reviewer",
    "Risk",
    "Service",
    "StatefulItem",
    "Visit",
    "database_url",
    "get_engine",
    "init_db",
    "session_scope",
]
