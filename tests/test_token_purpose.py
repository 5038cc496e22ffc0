"""A personal access token is made for one purpose: ``api`` (the API and the Prefect fire flow)
or ``feed`` (calendar subscriptions). Each is refused where it was not made for, and the
purpose is in the audited event that created it."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models import AuditEvent
from models.accounts import AccessToken
from states.clock import SystemClock
from states.errors import InvalidInput, MissingActor
from states.principal import Principal
from states.services import accounts, web_manage


def _make(db: Engine, me: Principal, purpose: str) -> str:
    with Session(db) as s:
        _, token = accounts.create_token(s, me, SystemClock(), f"{purpose} token", purpose=purpose)
        s.commit()
    return token


def test_a_feed_token_reads_feeds_and_is_refused_by_the_api(db: Engine, me: Principal) -> None:
    feed = _make(db, me, "feed")
    with Session(db) as s:
        assert web_manage.feed_principal(s, feed).user_id == me.user_id
        with pytest.raises(MissingActor):
            accounts.token_principal(s, feed, SystemClock())
        event = s.exec(select(AuditEvent).where(AuditEvent.kind == "token").order_by(col(AuditEvent.id).desc())).first()
        assert event is not None and event.data["purpose"] == "feed"
        assert s.exec(select(AccessToken)).one().purpose == "feed"


def test_an_api_token_is_refused_by_the_feeds(db: Engine, me: Principal) -> None:
    api = _make(db, me, "api")
    with Session(db) as s:
        assert accounts.token_principal(s, api, SystemClock()).user_id == me.user_id
        with pytest.raises(MissingActor):
            web_manage.feed_principal(s, api)


def test_an_unknown_purpose_is_refused_and_nothing_is_made(db: Engine, me: Principal) -> None:
    with Session(db) as s, pytest.raises(InvalidInput, match="purpose"):
        accounts.create_token(s, me, SystemClock(), "odd", purpose="admin")
    with Session(db) as s:
        assert s.exec(select(AccessToken)).all() == []


def test_an_auditor_makes_and_revokes_tokens_of_their_own(db: Engine) -> None:
    """Read-only in every role, an auditor still has tokens (the API's reads, a calendar feed):
    making and revoking one's own is done in no role, and audited as the auditor's."""
    from tests.support_accounts import account  # lazy: only this test

    auditor = account(db, "Ada Marsh", ("auditor",))
    with Session(db) as s:
        row, _ = accounts.create_token(s, auditor, SystemClock(), "reads")
        assert row.id is not None
        accounts.revoke_token(s, auditor, SystemClock(), row.id)
        s.commit()
        events = s.exec(select(AuditEvent).where(AuditEvent.kind == "token").order_by(col(AuditEvent.id))).all()
    assert [(e.trigger, e.role, e.user_id) for e in events] == [
        ("create", "(none)", auditor.user_id),
        ("revoke", "(none)", auditor.user_id),
    ]
