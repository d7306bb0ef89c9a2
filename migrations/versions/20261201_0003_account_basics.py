"""Account basics: email verification, ending every token at once, erasure, mailed tokens.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.infra.db import TIMESTAMP  # microseconds on every database (MySQL's DATETIME(6))

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None



def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN, never a batch: a batch rebuild of `users` on SQLite
    # would silently drop the lower(email) unique index.
    op.add_column(
        "users",
        sa.Column("email_verified", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "users", sa.Column("token_version", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column("users", sa.Column("erased_at", TIMESTAMP, nullable=True))

    op.create_table(
        "account_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("used_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_account_tokens_users_id_user", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_account_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_account_tokens_token_hash"),
    )
    op.create_index("ix_account_tokens_user_id", "account_tokens", ["user_id"])


def downgrade() -> None:
    # Each table's indexes go with it (MySQL drops no index a foreign key still needs).
    op.drop_table("account_tokens")
    # Not a batch, for the same reason (SQLite 3.35+ drops an unindexed column in place).
    op.drop_column("users", "erased_at")
    op.drop_column("users", "token_version")
    op.drop_column("users", "email_verified")
