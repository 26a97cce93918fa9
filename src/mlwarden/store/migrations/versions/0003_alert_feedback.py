"""Alert feedback: true and false alarms marked by people; false alarms widen their metric's
bounds until reverted.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 11:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mlwarden.store.schema

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("window_id", sa.Integer(), nullable=True),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("column", sa.String(length=200), nullable=False),
        sa.Column("segment", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("true_alarm", sa.Boolean(), nullable=False),
        sa.Column("lower", sa.Float(), nullable=True),
        sa.Column("upper", sa.Float(), nullable=True),
        sa.Column("by", sa.String(length=200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", mlwarden.store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("reverted_at", mlwarden.store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reverted_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["window_id"], ["windows.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert_feedback", schema=None) as batch_op:
        batch_op.create_index("ix_alert_feedback_model", ["model_id", "active"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alert_feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_feedback_model")
    op.drop_table("alert_feedback")
