"""How logged batches depart from each version's logging contract: one counter per version,
kind of batch, finding and column, open until a later batch meets that part again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-14 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mlwarden.store.schema

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = mlwarden.store.schema.UTCDateTime(timezone=True)
    op.create_table(
        "contract_findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("batch", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("column", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("first_at", when, nullable=False),
        sa.Column("last_at", when, nullable=False),
        sa.Column("cleared_at", when, nullable=True),
        sa.Column("batches", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["model_versions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version_id", "batch", "kind", "column", name="uq_contract_finding"),
    )


def downgrade() -> None:
    op.drop_table("contract_findings")
