"""Lineage: runs of pipeline steps, the content-hashed artifacts they read and wrote.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 11:25:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mlwarden.store.schema

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = mlwarden.store.schema.UTCDateTime(timezone=True)
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("started_at", when, nullable=False),
        sa.Column("ended_at", when, nullable=True),
        sa.Column("code_version", sa.String(length=100), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_name_started", ["name", "started_at"], unique=False)
    op.create_table(
        "lineage_artifacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("first_seen", when, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sha256"),
    )
    with op.batch_alter_table("lineage_artifacts", schema=None) as batch_op:
        batch_op.create_index("ix_lineage_artifacts_name", ["name", "first_seen"], unique=False)
    op.create_table(
        "run_io",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("artifact_id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.ForeignKeyConstraint(["artifact_id"], ["lineage_artifacts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "artifact_id", "direction", name="uq_run_io"),
    )
    with op.batch_alter_table("run_io", schema=None) as batch_op:
        batch_op.create_index("ix_run_io_artifact", ["artifact_id", "direction"], unique=False)


def downgrade() -> None:
    op.drop_table("run_io")
    op.drop_table("lineage_artifacts")
    op.drop_table("runs")
