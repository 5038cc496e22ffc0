"""who is acting: accounts, role grants, access tokens, permissions in the database, changes
awaiting a second person, the training mark, and the keyed audit chain's columns

Adds the ``account`` table (with the built-in ``system`` account, id 1, that the sweeps act
as), ``role_grant``, ``access_token``, ``permission_rule`` and ``pending_change``; the
``installation.training`` flag and ``installation.service_account`` (the OS login people reach
through sudo); and on ``auditevent`` the acting ``user_id``, the wall-clock
``recorded_at`` and the signing ``key_id`` (columns added in place: SQLite keeps the
append-only triggers of revision 0002). Events written before this revision keep their
unkeyed hashes; ``audit verify`` reports them as such.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 23:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types
from models.accounts import ensure_system_account

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = models.types.UTCDateTime(timezone=True)
_STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", _STR(), nullable=False),
        sa.Column("email", _STR(), nullable=True),
        sa.Column("status", _STR(), nullable=False),
        sa.Column("os_login", _STR(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("last_seen_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
        sa.UniqueConstraint("os_login"),
    )
    op.create_table(
        "role_grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", _STR(), nullable=False),
        sa.Column("scope", _STR(), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=True),
        sa.Column("granted_by", sa.Integer(), nullable=True),
        sa.Column("granted_at", _TS, nullable=False),
        sa.Column("revoked_by", sa.Integer(), nullable=True),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.Column("source", _STR(), nullable=False),
        sa.CheckConstraint("role <> 'system'", name="ck_role_grant_not_system"),
        sa.ForeignKeyConstraint(["user_id"], ["account.id"]),
        sa.ForeignKeyConstraint(["granted_by"], ["account.id"]),
        sa.ForeignKeyConstraint(["revoked_by"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_role_grant_user", "role_grant", ["user_id", "revoked_at"])
    op.create_table(
        "access_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", _STR(), nullable=False),
        sa.Column("token_hash", _STR(), nullable=False),
        sa.Column("prefix", _STR(), nullable=False),
        sa.Column("purpose", _STR(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.Column("last_used_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_access_token_user_id", "access_token", ["user_id"])
    op.create_table(
        "permission_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", _STR(), nullable=False),
        sa.Column("trigger", _STR(), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=True),
        sa.Column("four_eyes", sa.Boolean(), nullable=True),
        sa.Column("set_by", sa.Integer(), nullable=True),
        sa.Column("set_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["set_by"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "trigger"),
    )
    op.create_table(
        "pending_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", _STR(), nullable=False),
        sa.Column("action", _STR(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("proposed_by", sa.Integer(), nullable=False),
        sa.Column("proposed_name", _STR(), nullable=False),
        sa.Column("proposed_at", _TS, nullable=False),
        sa.Column("status", _STR(), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["proposed_by"], ["account.id"]),
        sa.ForeignKeyConstraint(["decided_by"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.add_column("installation", sa.Column("training", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("installation", sa.Column("service_account", _STR(length=64), nullable=True))
    # Added in place (no batch copy): SQLite keeps the append-only triggers of revision 0002.
    op.add_column("auditevent", sa.Column("user_id", sa.Integer(), nullable=True))
    op.add_column("auditevent", sa.Column("recorded_at", _TS, nullable=True))
    op.add_column("auditevent", sa.Column("key_id", _STR(), nullable=True))
    op.add_column("refusedattempt", sa.Column("user_id", sa.Integer(), nullable=True))
    op.add_column("proposal", sa.Column("user_id", sa.Integer(), nullable=True))
    op.add_column("accuracyitem", sa.Column("manager_user_id", sa.Integer(), nullable=True))
    op.add_column("accuracyitem", sa.Column("lead_user_id", sa.Integer(), nullable=True))
    op.add_column("surveillance", sa.Column("provider_agreed_user_id", sa.Integer(), nullable=True))
    op.add_column("surveillance", sa.Column("commissioner_agreed_user_id", sa.Integer(), nullable=True))
    ensure_system_account(op.get_bind())


def downgrade() -> None:
    op.drop_column("surveillance", "commissioner_agreed_user_id")
    op.drop_column("surveillance", "provider_agreed_user_id")
    op.drop_column("accuracyitem", "lead_user_id")
    op.drop_column("accuracyitem", "manager_user_id")
    op.drop_column("proposal", "user_id")
    op.drop_column("refusedattempt", "user_id")
    op.drop_column("auditevent", "key_id")
    op.drop_column("auditevent", "recorded_at")
    op.drop_column("auditevent", "user_id")
    op.drop_column("installation", "service_account")
    op.drop_column("installation", "training")
    op.drop_table("pending_change")
    op.drop_table("permission_rule")
    op.drop_index("ix_access_token_user_id", table_name="access_token")
    op.drop_table("access_token")
    op.drop_index("ix_role_grant_user", table_name="role_grant")
    op.drop_table("role_grant")
    op.drop_table("account")
