"""lateness of submissions, returns and factual-accuracy replies

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 20:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """One row per receipt of a submission, a self-assessment return or a factual-accuracy
    reply, with how late it was, counted once when it arrived. Nothing received before this
    revision is back-filled: those receipts were never measured against their deadlines."""
    op.create_table(
        "lateness",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("what", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("deadline", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("received_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("days_late", sa.Integer(), nullable=False),
        sa.Column("working_days_late", sa.Integer(), nullable=False),
        sa.Column("nation", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("clock_paused", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("lateness", schema=None) as batch_op:
        batch_op.create_index("ix_lateness_item", ["kind", "item_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lateness", schema=None) as batch_op:
        batch_op.drop_index("ix_lateness_item")

    op.drop_table("lateness")
