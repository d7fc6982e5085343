"""limit_lifts: spending limits an admin lifted for a user, channel or workspace, until a given time

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

Written by hand against storage/models.py (LimitLiftRow); tests/test_storage_schema.py checks the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "limit_lifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("workspace", sa.String(255), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lifted_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_limit_lifts"),
        sa.UniqueConstraint("platform", "workspace", "scope", "subject",
                            name="uq_limit_lifts_platform_workspace_scope_subject"),
    )


def downgrade() -> None:
    op.drop_table("limit_lifts")
