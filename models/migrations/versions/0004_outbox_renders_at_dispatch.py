"""outbox rows hold the letter's frozen context; the dispatcher renders it when it sends

Adds ``outboxmessage.context`` (JSON text, dates tagged: states.engine.letters.freeze) and lets
``subject``, ``body_text`` and ``body_html`` be empty until the letter is sent; the dispatcher
then stores what it sent there. Rows written before this revision keep their rendered text
and are sent as they are.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 17:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RENDERED = ("subject", "body_text", "body_html")


def upgrade() -> None:
    with op.batch_alter_table("outboxmessage", schema=None) as batch_op:
        batch_op.add_column(sa.Column("context", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        for name in RENDERED:
            batch_op.alter_column(name, existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=True)


def downgrade() -> None:
    # A letter still to be sent has no text yet, and the old dispatcher would send it blank:
    # refuse until they are sent (peerwatch dispatch). Rows never to be sent (undeliverable)
    # keep an empty text.
    waiting = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT COUNT(*) FROM outboxmessage WHERE subject IS NULL AND status IN ('queued', 'sending', 'failed')"
            )
        )
        .scalar()
    )
    if waiting:
        raise RuntimeError(
            f"{waiting} letter(s) in the outbox are not yet rendered: send them (peerwatch dispatch) "
            "before downgrading below 0004, or the old dispatcher would send them blank"
        )
    op.execute("UPDATE outboxmessage SET subject = '', body_text = '', body_html = '' WHERE subject IS NULL")
    with op.batch_alter_table("outboxmessage", schema=None) as batch_op:
        for name in RENDERED:
            batch_op.alter_column(name, existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=False)
        batch_op.drop_column("context")
