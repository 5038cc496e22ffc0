"""outbox resends after a crash mid-send

Adds ``outboxmessage.resend_at`` (a letter left in doubt by a crash is resent then, once,
with the same Message-ID; empty while an operator holds it) and ``outboxmessage.resent_at``
(when it was resent: the record that it may have gone twice, receivers de-duplicating on the
Message-ID). notifications/dispatch.py.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 20:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.types

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outboxmessage", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resend_at", models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resent_at", models.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outboxmessage", schema=None) as batch_op:
        batch_op.drop_column("resent_at")
        batch_op.drop_column("resend_at")
