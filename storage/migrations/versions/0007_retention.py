"""messages.author_id (who wrote a message, by platform id, for `forget`) and indexes for retention's deletes

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Written by hand against storage/models.py (MessageRow); tests/test_storage_schema.py checks the two agree.
Rows written before this migration keep author_id NULL: `forget` finds them through their turns' questions.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("author_id", sa.String(255), nullable=True))
    op.create_index("ix_messages_author_id", "messages", ["author_id"])
    op.create_index("ix_messages_created_at", "messages", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_messages_created_at", table_name="messages")
    op.drop_index("ix_messages_author_id", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("author_id")
