"""The outbox as the operator lists it, and as the outbox page reads it: which letters sit in a
person's scope (one SQL condition), its counts and its lists, each bounded."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, true
from sqlmodel import Session, col, select

from models import OutboxMessage, OutboxStatus
from models.tables import IN_DOUBT, Service
from models.types import is_row_id
from states.errors import InvalidInput, NotFound
from states.machines.spec import get_spec, kinds
from states.principal import INSTALLATION, Grant
from states.scope import recipient_scope

STATUSES = tuple(s.value for s in OutboxStatus)


def check_status(status: str | None) -> None:
    """InvalidInput unless ``status`` (if given) is an outbox status, naming them."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status {status!r}: use one of {', '.join(STATUSES)}")


def messages(session: Session, status: str | None = None) -> list[OutboxMessage]:
    """Every message (or those with this status), by id."""
    q = select(OutboxMessage).order_by(col(OutboxMessage.id))
    if status:
        q = q.where(OutboxMessage.status == status)
    return list(session.exec(q))


def message(session: Session, message_id: int) -> OutboxMessage:
    """One message, or NotFound naming the command that lists them."""
    m = session.get(OutboxMessage, message_id) if is_row_id(message_id) else None
    if m is None:
        raise NotFound(f"outbox message {message_id} not found (peerwatch outbox list)")
    return m


# ---------------------------------------------------------------- the outbox page, at scale

# What the page counts is capped (as My work's count is): past it the page says "or more".
COUNT_CAP = 1000


def incident_clause(now: datetime) -> ColumnElement[bool]:
    """An open incident: failed, undeliverable, or left ``sending`` past its lease (interrupted
    or in doubt); the same rows as ``notifications.dispatch.incidents``."""
    return or_(
        col(OutboxMessage.status).in_([OutboxStatus.FAILED, OutboxStatus.UNDELIVERABLE]),
        and_(col(OutboxMessage.status) == OutboxStatus.SENDING, col(OutboxMessage.next_attempt_at) <= now),
    )


def _in_doubt() -> ColumnElement[bool]:
    """``models.tables.is_in_doubt`` as SQL: sending, and its error starts with IN_DOUBT."""
    return and_(
        col(OutboxMessage.status) == OutboxStatus.SENDING,
        func.substr(func.coalesce(col(OutboxMessage.last_error), ""), 1, len(IN_DOUBT)) == IN_DOUBT,
    )


def scope_clause(
    session: Session, grants: Sequence[Grant], among: ColumnElement[bool] | None = None
) -> ColumnElement[bool]:
    """The letters about an item some grant of ``grants`` covers, as one SQL condition (a letter
    about no item of a known kind, or about a missing item: installation-wide grants only).

    A kind whose items sit where their service is (``states.scope.recipient_scope``) is matched
    by a join on its service; any other kind's items (complaints, MSSP cases, phases,
    submissions) are read once, those the letters ``among`` are about, and their own
    ``recipient_scope`` asked: each kind's own rule, as ``states.services.outbox`` applies it."""
    if any(g.scope == INSTALLATION for g in grants):
        return true()
    if not grants:
        return false()
    ids = {scope: [g.scope_id for g in grants if g.scope == scope] for scope in ("service", "organisation", "network")}
    parts = []
    for kind in kinds():
        spec = get_spec(kind)
        model: Any = spec.model
        items: Any
        if spec.recipient_scope is recipient_scope and hasattr(model, "service_id"):
            items = (
                select(model.id)
                .join(Service, col(Service.id) == model.service_id)
                .where(
                    or_(
                        col(Service.id).in_(ids["service"]),
                        col(Service.organisation_id).in_(ids["organisation"]),
                        col(Service.network_id).in_(ids["network"]),
                    )
                )
            )
        else:
            about = select(OutboxMessage.item_id).where(
                OutboxMessage.kind == kind, among if among is not None else true()
            )
            rows = session.exec(select(model).where(col(model.id).in_(about))).all()
            items = [r.id for r in rows if any(g.covers(spec.recipient_scope(session, r)) for g in grants)]
        parts.append(and_(col(OutboxMessage.kind) == kind, col(OutboxMessage.item_id).in_(items)))
    return or_(*parts)


def counts(session: Session, scope: ColumnElement[bool], now: datetime) -> dict[str, int]:
    """The open incidents in ``scope`` by what they are, and the letters queued: each at most
    COUNT_CAP + 1 (more than COUNT_CAP: the page says "or more")."""
    kinds_of = {
        "failed": col(OutboxMessage.status) == OutboxStatus.FAILED,
        "undeliverable": col(OutboxMessage.status) == OutboxStatus.UNDELIVERABLE,
        "in_doubt": and_(incident_clause(now), _in_doubt()),
        "interrupted": and_(incident_clause(now), col(OutboxMessage.status) == OutboxStatus.SENDING, not_(_in_doubt())),
        "queued": col(OutboxMessage.status) == OutboxStatus.QUEUED,
    }
    out = {}
    for name, where in kinds_of.items():
        capped = select(OutboxMessage.id).where(where, scope).limit(COUNT_CAP + 1).subquery()
        out[name] = int(session.exec(select(func.count()).select_from(capped)).one())
    return out


def listed(
    session: Session, scope: ColumnElement[bool], *, now: datetime | None = None, status: str | None = None, limit: int
) -> list[OutboxMessage]:
    """At most ``limit`` letters in ``scope``: the open incidents (``now``), oldest first, or
    those with ``status``, newest first."""
    q = select(OutboxMessage).where(scope)
    if now is not None:
        q = q.where(incident_clause(now)).order_by(col(OutboxMessage.id))
    else:
        check_status(status)
        q = q.where(OutboxMessage.status == status).order_by(col(OutboxMessage.id).desc())
    return list(session.exec(q.limit(limit)))
