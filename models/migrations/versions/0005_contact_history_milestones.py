"""contacts history and retirement; milestones owned and done

Contacts get effective dates (``valid_from``, ``valid_until``) and ``replaces_id`` (an edit
writes a new row from its date and closes the old one: the history is kept); reviewers get
``retired_on``; milestones get their owner (a contact role, the service's by default), who
marked them done, and the day the sweep chased them, with an index for the sweep's scan.
Downgrading drops the effective dates: a replaced contact and its successor would then both be
in force, so retire one by hand (the audit chain still says who held the role when).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 20:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.add_column(sa.Column("valid_from", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("valid_until", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("replaces_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_contact_replaces_id_contact", "contact", ["replaces_id"], ["id"])
    with op.batch_alter_table("reviewer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retired_on", sa.Date(), nullable=True))
    with op.batch_alter_table("milestone", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("owner_role", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default="service-lead")
        )
        batch_op.add_column(sa.Column("done_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("chased_on", sa.Date(), nullable=True))
        batch_op.create_index("ix_milestone_open_due", ["done_on", "due_on"], unique=False)
    with op.batch_alter_table("milestone", schema=None) as batch_op:
        batch_op.alter_column("owner_role", existing_type=sqlmodel.sql.sqltypes.AutoString(), server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("milestone", schema=None) as batch_op:
        batch_op.drop_index("ix_milestone_open_due")
        batch_op.drop_column("chased_on")
        batch_op.drop_column("done_by")
        batch_op.drop_column("owner_role")
    with op.batch_alter_table("reviewer", schema=None) as batch_op:
        batch_op.drop_column("retired_on")
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_constraint("fk_contact_replaces_id_contact", type_="foreignkey")
        batch_op.drop_column("replaces_id")
        batch_op.drop_column("valid_until")
        batch_op.drop_column("valid_from")
