"""Retry schedules in the database: when a pending enrichment or notification is next tried.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.infra.db import TIMESTAMP  # microseconds on every database (MySQL's DATETIME(6))

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING_ENRICHMENT = sa.text("enrichment_status = 'pending'")
PENDING_NOTIFICATION = sa.text("sent_at IS NULL AND failed_at IS NULL")


def upgrade() -> None:
    # Adding a nullable column is a plain ALTER on SQLite too: the batch does not copy the table.
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("enrichment_retry_at", TIMESTAMP, nullable=True))
    op.create_index(
        "ix_users_enrichment_due",
        "users",
        ["enrichment_retry_at"],
        postgresql_where=PENDING_ENRICHMENT,
        sqlite_where=PENDING_ENRICHMENT,
    )

    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("next_attempt_at", TIMESTAMP, nullable=True))
    op.create_index(
        "ix_notifications_due",
        "notifications",
        ["next_attempt_at", "id"],
        postgresql_where=PENDING_NOTIFICATION,
        sqlite_where=PENDING_NOTIFICATION,
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_due", table_name="notifications")
    op.drop_index("ix_users_enrichment_due", table_name="users")
    # Not a batch: SQLite (3.35+) drops an unindexed column in place, while a batch would
    # rebuild `users` from reflection, which cannot see the lower(email) index and loses it.
    op.drop_column("notifications", "next_attempt_at")
    op.drop_column("users", "enrichment_retry_at")
