"""seeds read again: MSSP referrals and decisions, forum decisions, local quarters

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 20:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sqlmodel

from models.types import UTCDateTime

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # MSSP: referral to the MSSCG, a proposed exit, and the MSSCG's decisions as recorded
    with op.batch_alter_table("msspcase", schema=None) as batch_op:
        batch_op.add_column(sa.Column("referred_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("exit_proposed_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("decisions", sa.JSON(), nullable=False, server_default="[]"))
    # perinatal: what each forum decided, as the network office recorded it
    with op.batch_alter_table("perinatalconcern", schema=None) as batch_op:
        batch_op.add_column(sa.Column("forum_decisions", sa.JSON(), nullable=False, server_default="[]"))
    # cases that entered by the old automatic rule keep their state; nothing to convert
    # a network's own quarter for a step of a local-policy programme (West Midlands)
    op.create_table(
        "phase_quarter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("network_id", sa.Integer(), nullable=False),
        sa.Column("programme", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("quarter", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("from_year", sa.Integer(), nullable=False),
        sa.Column("set_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("set_role", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("set_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(
            ["network_id"],
            ["network.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("network_id", "programme", "key", "from_year", name="uq_phase_quarter"),
    )
    with op.batch_alter_table("phase_quarter", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_phase_quarter_network_id"), ["network_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("phase_quarter", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_phase_quarter_network_id"))
    op.drop_table("phase_quarter")
    with op.batch_alter_table("perinatalconcern", schema=None) as batch_op:
        batch_op.drop_column("forum_decisions")
    with op.batch_alter_table("msspcase", schema=None) as batch_op:
        batch_op.drop_column("decisions")
        batch_op.drop_column("exit_proposed_on")
        batch_op.drop_column("referred_on")
