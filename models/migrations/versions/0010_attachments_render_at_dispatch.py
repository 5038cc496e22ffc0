"""attachments render at dispatch: the renderer's name and its frozen data

Adds ``attachment.renderer`` (which renderer makes the file: ``report_pdf``,
``selfassessment_xlsx``) and ``attachment.document`` (its data, frozen as JSON with dates
tagged, as a letter's context is) and lets ``attachment.data`` be empty until the dispatcher
renders the file and keeps the bytes it sent. Rows written before this revision keep their bytes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 21:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("renderer", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("document", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.alter_column("data", existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    # The old dispatcher would send an attachment not yet rendered as an empty file: refuse
    # until the letters carrying one are sent (peerwatch dispatch).
    waiting = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM attachment WHERE data IS NULL")).scalar()
    if waiting:
        raise RuntimeError(
            f"{waiting} attachment(s) in the outbox are not yet rendered: send them (peerwatch dispatch) "
            "before downgrading below 0010"
        )
    with op.batch_alter_table("attachment", schema=None) as batch_op:
        batch_op.alter_column("data", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column("document")
        batch_op.drop_column("renderer")
