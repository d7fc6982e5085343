"""channel_settings: an admin's defaults for the conversations of one channel

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

Written by hand against storage/models.py (ChannelSettingsRow); tests/test_storage_schema.py checks the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("workspace", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(255), nullable=False),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("thinking", sa.Boolean(), nullable=True),
        sa.Column("system_prompt", sa.Text(), nullable=True),
        sa.Column("usage_footer", sa.Boolean(), nullable=True),
        sa.Column("answer_without_mention", sa.Boolean(), nullable=True),
        sa.Column("updated_by", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_channel_settings"),
        sa.UniqueConstraint("platform", "workspace", "channel",
                            name="uq_channel_settings_platform_workspace_channel"),
    )


def downgrade() -> None:
    op.drop_table("channel_settings")
