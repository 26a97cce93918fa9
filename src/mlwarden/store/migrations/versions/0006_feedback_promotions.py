"""Feedback on predictions and their explanations, promotion requests with their gate and
review, and the count of feedback and explained predictions per window.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mlwarden.store.schema

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = mlwarden.store.schema.UTCDateTime(timezone=True)
    with op.batch_alter_table("windows", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("n_signals", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_table(
        "prediction_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=200), nullable=False),
        sa.Column("prediction_id", sa.String(length=200), nullable=False),
        sa.Column("prediction_at", when, nullable=False),
        sa.Column("segment", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("by", sa.String(length=200), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=True),
        sa.Column("true_value", sa.JSON(), nullable=True),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=100), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("plausible", sa.Boolean(), nullable=True),
        sa.Column("explanation_comment", sa.Text(), nullable=False),
        sa.Column("shown", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("prediction_feedback", schema=None) as batch_op:
        batch_op.create_index(
            "ix_prediction_feedback_model_at", ["model_id", "prediction_at"], unique=False
        )
        batch_op.create_index(
            "ix_prediction_feedback_prediction", ["model_id", "prediction_id"], unique=False
        )
    op.create_table(
        "promotions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("baseline_version_id", sa.Integer(), nullable=True),
        sa.Column("alias", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("requires_review", sa.Boolean(), nullable=False),
        sa.Column("gate", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("requested_at", when, nullable=False),
        sa.Column("reviewed_by", sa.String(length=200), nullable=False),
        sa.Column("reviewed_at", when, nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["baseline_version_id"], ["model_versions.id"], ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["version_id"], ["model_versions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.create_index("ix_promotions_model", ["model_id", "requested_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.drop_index("ix_promotions_model")
    op.drop_table("promotions")
    with op.batch_alter_table("prediction_feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_prediction_feedback_prediction")
        batch_op.drop_index("ix_prediction_feedback_model_at")
    op.drop_table("prediction_feedback")
    with op.batch_alter_table("windows", schema=None) as batch_op:
        batch_op.drop_column("n_signals")
