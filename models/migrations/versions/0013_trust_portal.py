"""the Trust portal: grants made from contacts, formal responses, uploads, recommendations,
action plans with actions and milestones, monthly board reviews and measure alerts

Adds to ``role_grant`` the contact a grant was made from (``contact_id``) and the day access
ends (``valid_until``: the contact's retirement or replacement). New tables: ``risk_response``
(the organisation's formal response to an IR or SC, and the Network Manager's judgement),
``upload`` (a file sent through the portal: sniffed type, SHA-256, version), ``recommendation``
(a report's, per standard or per risk), ``action_plan`` (a stateful item), ``plan_action``,
``action_milestone``, ``board_review`` (a Trust board's monthly perinatal measures) and
``measure_alert`` (a measure outside its threshold, proposing a concern).
Columns are added in place (no batch copy).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 06:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = models.types.UTCDateTime(timezone=True)
_STR = sqlmodel.sql.sqltypes.AutoString


def _stateful() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state", _STR(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    ]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":  # SQLite adds a column's REFERENCES in place, not a constraint
        op.execute("ALTER TABLE role_grant ADD COLUMN contact_id INTEGER REFERENCES contact (id)")
    else:
        op.add_column("role_grant", sa.Column("contact_id", sa.Integer(), nullable=True))
        op.create_foreign_key("fk_role_grant_contact", "role_grant", "contact", ["contact_id"], ["id"])
    op.add_column("role_grant", sa.Column("valid_until", sa.Date(), nullable=True))
    op.create_index("ix_role_grant_contact_id", "role_grant", ["contact_id"])
    op.create_table(
        "risk_response",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("risk_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("text", _STR(), nullable=False),
        sa.Column("submitted_by", sa.Integer(), nullable=False),
        sa.Column("submitted_name", _STR(), nullable=False),
        sa.Column("submitted_role", _STR(), nullable=False),
        sa.Column("submitted_at", _TS, nullable=False),
        sa.Column("judgement", _STR(), nullable=True),
        sa.Column("judged_by", sa.Integer(), nullable=True),
        sa.Column("judged_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["risk_id"], ["risk.id"]),
        sa.ForeignKeyConstraint(["submitted_by"], ["account.id"]),
        sa.ForeignKeyConstraint(["judged_by"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("risk_id", "number", name="uq_risk_response"),
    )
    op.create_index("ix_risk_response_risk_id", "risk_response", ["risk_id"])
    op.create_table(
        "upload",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_kind", _STR(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("owner_kind", _STR(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("filename", _STR(), nullable=False),
        sa.Column("content_type", _STR(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", _STR(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_by", sa.Integer(), nullable=False),
        sa.Column("uploaded_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["uploaded_by"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_upload_owner", "upload", ["owner_kind", "owner_id"])
    op.create_index("ix_upload_item", "upload", ["item_kind", "item_id"])
    op.create_table(
        "recommendation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("text", _STR(), nullable=False),
        sa.Column("standard_ref", _STR(), nullable=True),
        sa.Column("risk_id", sa.Integer(), nullable=True),
        sa.Column("recorded_by", sa.Integer(), nullable=True),
        sa.Column("recorded_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["report_id"], ["report.id"]),
        sa.ForeignKeyConstraint(["risk_id"], ["risk.id"]),
        sa.ForeignKeyConstraint(["recorded_by"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_recommendation_report_id", "recommendation", ["report_id"])
    op.create_table(
        "action_plan",
        *_stateful(),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("title", _STR(), nullable=False),
        sa.Column("programme_year", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=True),
        sa.Column("risk_id", sa.Integer(), nullable=True),
        sa.Column("carried_from_id", sa.Integer(), nullable=True),
        sa.Column("comments", _STR(), nullable=True),
        sa.Column("agreed_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["service_id"], ["service.id"]),
        sa.ForeignKeyConstraint(["report_id"], ["report.id"]),
        sa.ForeignKeyConstraint(["risk_id"], ["risk.id"]),
        sa.ForeignKeyConstraint(["carried_from_id"], ["action_plan.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_action_plan_state", "action_plan", ["state"])
    op.create_index("ix_action_plan_service", "action_plan", ["service_id", "programme_year"])
    op.create_table(
        "plan_action",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("recommendation_id", sa.Integer(), nullable=True),
        sa.Column("text", _STR(), nullable=False),
        sa.Column("owner_name", _STR(), nullable=False),
        sa.Column("owner_role", _STR(), nullable=False),
        sa.Column("interim", sa.Boolean(), nullable=False),
        sa.Column("status", _STR(), nullable=False),
        sa.Column("done_on", sa.Date(), nullable=True),
        sa.Column("evidence", _STR(), nullable=True),
        sa.Column("carried_to_id", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["plan_id"], ["action_plan.id"]),
        sa.ForeignKeyConstraint(["recommendation_id"], ["recommendation.id"]),
        sa.ForeignKeyConstraint(["carried_to_id"], ["plan_action.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_plan_action_plan_id", "plan_action", ["plan_id"])
    op.create_table(
        "action_milestone",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("text", _STR(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("done_on", sa.Date(), nullable=True),
        sa.Column("chased_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["action_id"], ["plan_action.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_action_milestone_action_id", "action_milestone", ["action_id"])
    op.create_index("ix_action_milestone_open_due", "action_milestone", ["done_on", "due_on"])
    op.create_table(
        "board_review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("measures", sa.JSON(), nullable=False),
        sa.Column("reviewed_on", sa.Date(), nullable=False),
        sa.Column("recorded_by", sa.Integer(), nullable=False),
        sa.Column("recorded_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["service_id"], ["service.id"]),
        sa.ForeignKeyConstraint(["recorded_by"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("service_id", "month", "version", name="uq_board_review"),
    )
    op.create_index("ix_board_review_service_id", "board_review", ["service_id"])
    op.create_table(
        "measure_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("measure", _STR(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("threshold", _STR(), nullable=False),
        sa.Column("review_id", sa.Integer(), nullable=False),
        sa.Column("status", _STR(), nullable=False),
        sa.Column("concern_id", sa.Integer(), nullable=True),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", _TS, nullable=True),
        sa.Column("reason", _STR(), nullable=True),
        sa.ForeignKeyConstraint(["service_id"], ["service.id"]),
        sa.ForeignKeyConstraint(["review_id"], ["board_review.id"]),
        sa.ForeignKeyConstraint(["concern_id"], ["perinatalconcern.id"]),
        sa.ForeignKeyConstraint(["decided_by"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("service_id", "month", "measure", name="uq_measure_alert"),
    )
    op.create_index("ix_measure_alert_service_id", "measure_alert", ["service_id"])


def downgrade() -> None:
    for table in (
        "measure_alert",
        "board_review",
        "action_milestone",
        "plan_action",
        "action_plan",
        "recommendation",
        "upload",
        "risk_response",
    ):
        op.drop_table(table)
    op.drop_index("ix_role_grant_contact_id", table_name="role_grant")
    op.drop_column("role_grant", "valid_until")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_role_grant_contact", "role_grant", type_="foreignkey")
    op.drop_column("role_grant", "contact_id")
