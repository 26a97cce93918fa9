"""The alert budget: each metric's calibrated score, and each incident's opening rule and how
surprising its opening window was on reference-like data.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("metrics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("score", sa.Float(), nullable=True))
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rule", sa.String(length=20), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("surprise", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("surprise")
        batch_op.drop_column("rule")
    with op.batch_alter_table("metrics", schema=None) as batch_op:
        batch_op.drop_column("score")
