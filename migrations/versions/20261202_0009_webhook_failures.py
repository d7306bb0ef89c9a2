"""Webhook endpoints count the deliveries that failed in a row, and say why one was switched
off (WEBHOOK_DISABLE_AFTER_FAILURES).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "webhook_endpoints",
        sa.Column("consecutive_failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "webhook_endpoints", sa.Column("disabled_reason", sa.String(length=200), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_column("disabled_reason")
        batch.drop_column("consecutive_failures")
