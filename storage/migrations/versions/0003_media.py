"""media: videos beside images (kind, filename, remote upload id); messages.image_ids becomes media_ids

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Written by hand against storage/models.py; tests/test_storage_schema.py checks the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attachments") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="image"))
        batch.add_column(sa.Column("filename", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("remote_id", sa.String(255), nullable=True))
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("image_ids", new_column_name="media_ids")


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("media_ids", new_column_name="image_ids")
    with op.batch_alter_table("attachments") as batch:
        batch.drop_column("remote_id")
        batch.drop_column("filename")
        batch.drop_column("kind")
