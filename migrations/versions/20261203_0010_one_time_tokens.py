"""Chat-link tokens join the mailed ones in `account_tokens` (purpose `telegram_link`): one
table of one-time tokens (core/users/tokens.py).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.infra.db import TIMESTAMP  # microseconds on every database (MySQL's DATETIME(6))

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = "user_id, token_hash, created_at, expires_at, used_at"


def upgrade() -> None:
    op.execute(
        f"INSERT INTO account_tokens (purpose, {COLUMNS}) "
        f"SELECT 'telegram_link', {COLUMNS} FROM telegram_link_tokens"
    )
    op.drop_table("telegram_link_tokens")


def downgrade() -> None:
    op.create_table(
        "telegram_link_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("used_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_telegram_link_tokens_users_id_user",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_telegram_link_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_telegram_link_tokens_token_hash"),
    )
    op.create_index("ix_telegram_link_tokens_user_id", "telegram_link_tokens", ["user_id"])
    op.execute(
        f"INSERT INTO telegram_link_tokens ({COLUMNS}) "
        f"SELECT {COLUMNS} FROM account_tokens WHERE purpose = 'telegram_link'"
    )
    op.execute("DELETE FROM account_tokens WHERE purpose = 'telegram_link'")
