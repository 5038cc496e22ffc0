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
    AuditEvent,
    Contact,
    Deadline,
    DeadlineStatus,
    Milestone,
    Network,
    Organisation,
    OutboxMessage,
    OutboxStatus,
    Risk,
    Service,
    StatefulItem,
)

__all__ = [
    "AuditEvent",
    "Contact",
    "Deadline",
    "DeadlineStatus",
    "Milestone",
    "Network",
    "Organisation",
    "OutboxMessage",
    "OutboxStatus",
    "Risk",
    "Service",
    "StatefulItem",
    "database_url",
    "get_engine",
    "init_db",
    "session_scope",
]
