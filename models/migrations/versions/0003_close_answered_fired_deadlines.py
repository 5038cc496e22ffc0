"""close 'fired' deadlines already answered: a passed deadline now stays outstanding until its
item moves on, and the engine closes it then; rows written before that rule are closed here

Data only, no schema change. A deadline whose overdue letter was sent (status 'fired') is
closed when, after it was created, its item changed state (to a state its rule does not run
through: the appeal result date runs through consideration and the subgroup, a complaint's
resolution date through the investigation) or a newer deadline of the same name replaced it.
Written by hand; the run-through states are copied here so that later rule changes cannot
change what this migration did.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 15:30:00

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNS_THROUGH = {
    ("appeal", "appeal_result"): ("initial_consideration", "subgroup_convened"),
    ("complaint", "resolution"): ("investigated",),
}


def upgrade() -> None:
    runs_through = " ".join(
        f"AND NOT (d.kind = '{kind}' AND d.name = '{name}' AND e.to_state IN ({', '.join(repr(s) for s in states)}))"
        for (kind, name), states in RUNS_THROUGH.items()
    )
    op.execute(f"""
        UPDATE deadline SET status = 'closed'
        WHERE deadline.status = 'fired' AND deadline.id IN (
            SELECT d.id FROM deadline d WHERE d.status = 'fired' AND (
                EXISTS (SELECT 1 FROM auditevent e WHERE e.kind = d.kind AND e.item_id = d.item_id
                        AND e.at > d.created_at AND e.from_state <> e.to_state {runs_through})
                OR EXISTS (SELECT 1 FROM deadline later WHERE later.kind = d.kind AND later.item_id = d.item_id
                           AND later.name = d.name AND later.id > d.id)))
    """)


def downgrade() -> None:
    """Nothing to undo: which rows were 'fired' before is not kept (the audit log has the letters)."""
