"""Checks attached to pipeline runs, OpenLineage run ids, prediction batches linked to the run
that produced them, and the audit log of reaction policies.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 12:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mlwarden.store.schema

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = mlwarden.store.schema.UTCDateTime(timezone=True)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_id", sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint("uq_runs_external_id", ["external_id"])
    op.create_table(
        "run_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("run_checks", schema=None) as batch_op:
        batch_op.create_index("ix_run_checks_run", ["run_id"], unique=False)
    with op.batch_alter_table("ingested_batches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("run_ref", sa.String(length=200), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("first_at", when, nullable=True))
        batch_op.add_column(sa.Column("last_at", when, nullable=True))
        batch_op.create_index("ix_batches_model_first", ["model_id", "first_at"], unique=False)
    op.create_table(
        "policy_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("policy", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("condition", sa.Text(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("window_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=False),
        sa.Column("decided_at", when, nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["window_id"], ["windows.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key", name="uq_policy_action_key"),
    )
    with op.batch_alter_table("policy_actions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_policy_actions_model_created", ["model_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("policy_actions", schema=None) as batch_op:
        batch_op.drop_index("ix_policy_actions_model_created")
    op.drop_table("policy_actions")
    with op.batch_alter_table("ingested_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_batches_model_first")
        batch_op.drop_column("last_at")
        batch_op.drop_column("first_at")
        batch_op.drop_column("run_ref")
    with op.batch_alter_table("run_checks", schema=None) as batch_op:
        batch_op.drop_index("ix_run_checks_run")
    op.drop_table("run_checks")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_runs_external_id", type_="unique")
        batch_op.drop_column("external_id")
