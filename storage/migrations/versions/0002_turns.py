"""turns: acknowledged questions as durable, leased units of work; conversation leases

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

Written by hand against storage/models.py (TurnRow); tests/test_storage_schema.py checks the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "turns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("question", sa.JSON(), nullable=False),
        sa.Column("reply", sa.JSON(), nullable=False),
        sa.Column("platform_message_ids", sa.JSON(), nullable=False),
        sa.Column("question_row_id", sa.Integer(), nullable=True),
        sa.Column("lease_owner", sa.String(255), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_turns"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_turns_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["question_row_id"],
            ["messages.id"],
            name="fk_turns_question_row_id_messages",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_turns_state_platform", "turns", ["state", "platform"])
    op.create_index("ix_turns_lease_owner", "turns", ["lease_owner"])
    op.create_index("ix_turns_conversation_id", "turns", ["conversation_id"])
    op.add_column("conversations", sa.Column("lease_owner", sa.String(255), nullable=True))
    op.add_column("conversations", sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
    op.drop_table("turns")
