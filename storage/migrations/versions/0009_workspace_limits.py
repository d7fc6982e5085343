"""workspace_limits: spending limits admins set for their workspace with `limits set`

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

Written by hand against storage/models.py (WorkspaceLimitRow); tests/test_storage_schema.py checks the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workspace_limits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("workspace", sa.String(255), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("usd", sa.Double(), nullable=True),
        sa.Column("tokens", sa.Integer(), nullable=True),
        sa.Column("set_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workspace_limits"),
        sa.UniqueConstraint("platform", "workspace", "scope", "period",
                            name="uq_workspace_limits_platform_workspace_scope_period"),
    )


def downgrade() -> None:
    op.drop_table("workspace_limits")
