"""web sign-in: password hashes and single sign-on identities on accounts, server-side web
sessions and sign-in attempts

Adds to ``account`` the Argon2id ``password_hash`` and when it was set, and the OpenID Connect
identity (``oidc_issuer``, ``oidc_subject``: unique together when set); the tables
``web_session`` (a signed-in browser: only the SHA-256 of its cookie's token is stored) and
``sign_in_attempt`` (what the throttles count); and on ``installation`` the day a training
database stands at (``training_today``), so its web application acts on the story's date;
and the index "My work" reads a kind's open deadlines by, in due-date order
(``ix_deadline_open_due``, partial: closed deadlines are left out).
Columns are added in place (no batch copy).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 02:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = models.types.UTCDateTime(timezone=True)
_STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.add_column("account", sa.Column("password_hash", _STR(), nullable=True))
    op.add_column("account", sa.Column("password_set_at", _TS, nullable=True))
    op.add_column("account", sa.Column("oidc_issuer", _STR(), nullable=True))
    op.add_column("account", sa.Column("oidc_subject", _STR(), nullable=True))
    op.create_index("ix_account_oidc", "account", ["oidc_issuer", "oidc_subject"], unique=True)
    op.create_table(
        "web_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", _STR(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf", _STR(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("last_seen_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("ended_reason", _STR(), nullable=True),
        sa.Column("address", _STR(), nullable=True),
        sa.Column("via", _STR(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_web_session_user", "web_session", ["user_id", "ended_at"])
    op.create_table(
        "sign_in_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("email_given", _STR(), nullable=True),
        sa.Column("address", _STR(), nullable=True),
        sa.Column("via", _STR(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sign_in_attempt_email", "sign_in_attempt", ["email_given", "ok", "at"])
    op.create_index("ix_sign_in_attempt_address", "sign_in_attempt", ["address", "ok", "at"])
    op.add_column("installation", sa.Column("training_today", sa.Date(), nullable=True))
    open_only = sa.text("status != 'closed'")
    op.create_index(
        "ix_deadline_open_due",
        "deadline",
        ["kind", "due_on", "item_id"],
        sqlite_where=open_only,
        postgresql_where=open_only,
    )


def downgrade() -> None:
    op.drop_index("ix_deadline_open_due", table_name="deadline")
    op.drop_column("installation", "training_today")
    op.drop_index("ix_sign_in_attempt_address", table_name="sign_in_attempt")
    op.drop_index("ix_sign_in_attempt_email", table_name="sign_in_attempt")
    op.drop_table("sign_in_attempt")
    op.drop_index("ix_web_session_user", table_name="web_session")
    op.drop_table("web_session")
    op.drop_index("ix_account_oidc", table_name="account")
    op.drop_column("account", "oidc_subject")
    op.drop_column("account", "oidc_issuer")
    op.drop_column("account", "password_set_at")
    op.drop_column("account", "password_hash")
