"""audit table append-only: triggers refuse UPDATE and DELETE on auditevent

Written by hand (autogenerate does not see triggers): the statements live in models/guards.py,
shared with init_db's fast path for brand-new databases.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 13:10:00

"""

from collections.abc import Sequence

from alembic import op

from models.guards import install_audit_guards

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    install_audit_guards(op.get_bind())


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_event_no_update" + (" ON auditevent" if _pg() else ""))
    op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete" + (" ON auditevent" if _pg() else ""))
    if _pg():
        op.execute("DROP FUNCTION IF EXISTS peerwatch_audit_append_only()")


def _pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"
