"""Who may act: people's accounts, the roles granted to them in a scope, their access tokens,
the permission table administrators change, and changes waiting for a second person.

A ``User`` is a person (or the one built-in ``system`` account the sweeps act as, which no one
can sign in as). A ``RoleGrant`` gives a user a role in a scope: the whole installation, a
network, an organisation (Trust) or a service; revoking one keeps the row (``revoked_at``) so
the history of who could do what stays. ``AccessToken`` rows hold only a hash of the token.
``PermissionRule`` rows override the roles a machine's table allows for a trigger. The web
application's sessions and sign-in attempts are in ``models/web.py``.
Nothing here decides anything: ``states/accounts.py`` and the engine do.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, Index, UniqueConstraint, text
from sqlalchemy.engine import Connection
from sqlmodel import Field

from models.types import Table, UTCDateTime, utcnow

SYSTEM_USER_ID = 1  # made with the schema (migration 0011, or create_all): the sweeps' and dispatcher's account
SYSTEM_NAME = "peerwatch-sweeper"


def ensure_system_account(conn: Connection) -> None:
    """Make the built-in system account (id 1) if it is not there, so that no person's account
    ever gets its id; on PostgreSQL the id sequence then starts above it."""
    if conn.execute(text("SELECT 1 FROM account WHERE id = :id"), {"id": SYSTEM_USER_ID}).first() is None:
        conn.execute(
            text("INSERT INTO account (id, name, status, created_at) VALUES (:id, :name, 'system', :at)"),
            {"id": SYSTEM_USER_ID, "name": SYSTEM_NAME, "at": utcnow()},
        )
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT setval(pg_get_serial_sequence('account', 'id'), (SELECT MAX(id) FROM account))"))


class User(Table, table=True):
    """A person who may act in peerwatch (status ``active`` or ``disabled``), or ``system``."""

    __tablename__ = "account"
    # One account per single sign-on identity; NULLs (no identity linked) never collide.
    __table_args__ = (Index("ix_account_oidc", "oidc_issuer", "oidc_subject", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    name: str
    email: str | None = Field(default=None, unique=True)  # lower-cased; None only for the system account
    status: str = "active"  # active | disabled | system
    os_login: str | None = Field(default=None, unique=True)  # the OS account the CLI maps to this user
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Web sign-in (states/services/signin.py): an Argon2id hash (never the password), and the
    # OpenID Connect identity (issuer URL + subject) linked to this account, when there is one.
    password_hash: str | None = None
    password_set_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    oidc_issuer: str | None = None
    oidc_subject: str | None = None


class RoleGrant(Table, table=True):
    """A role held in a scope; revoked grants are kept as history."""

    __tablename__ = "role_grant"
    __table_args__ = (
        Index("ix_role_grant_user", "user_id", "revoked_at"),
        CheckConstraint("role <> 'system'", name="ck_role_grant_not_system"),  # no person is the system
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="account.id")
    role: str
    scope: str  # installation | network | organisation | service
    scope_id: int | None = None  # None for the whole installation
    granted_by: int | None = Field(default=None, foreign_key="account.id")  # None: made by peerwatch init
    granted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_by: int | None = Field(default=None, foreign_key="account.id")
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    source: str = "admin"  # admin | contact (made from a contact role, issue 16) | init
    # A grant made from a contact (source "contact"): the contact row, and the day access ends
    # (the contact's retirement or replacement: no access from that day, Europe/London).
    contact_id: int | None = Field(default=None, foreign_key="contact.id", index=True)
    valid_until: date | None = None


class AccessToken(Table, table=True):
    """A personal access token: shown once, stored as a SHA-256 hash, expiring, revocable."""

    __tablename__ = "access_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="account.id", index=True)
    name: str
    token_hash: str = Field(unique=True)
    prefix: str  # the first characters, to recognise a token in a list
    purpose: str = "api"  # api | feed
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PermissionRule(Table, table=True):
    """An administrator's override of who may fire a trigger (``roles``) and whether it needs
    four eyes; absent, the machine's own table applies."""

    __tablename__ = "permission_rule"
    __table_args__ = (UniqueConstraint("kind", "trigger"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    trigger: str
    roles: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    four_eyes: bool | None = None
    set_by: int | None = Field(default=None, foreign_key="account.id")
    set_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PendingChange(Table, table=True):
    """A change proposed by one person that a different person must confirm (four eyes outside
    the state machines: a contact's escalation address, for one)."""

    __tablename__ = "pending_change"

    id: int | None = Field(default=None, primary_key=True)
    kind: str  # what it changes: contact
    action: str  # add | edit | retire
    target_id: int | None = None
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    proposed_by: int = Field(foreign_key="account.id")
    proposed_name: str
    proposed_at: datetime = Field(sa_type=UTCDateTime)
    status: str = "pending"  # pending | confirmed | withdrawn
    decided_by: int | None = Field(default=None, foreign_key="account.id")
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
