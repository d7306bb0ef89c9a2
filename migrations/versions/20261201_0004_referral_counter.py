"""Referrals by cursor: a per-referrer counter kept by sign-ups, and an index for keyset pages.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.infra.db import is_mysql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE, never a batch (a SQLite rebuild of `users` drops uq_users_email_lower).
    op.add_column(
        "users",
        sa.Column("referral_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    if is_mysql(op.get_bind().dialect.name):
        # MySQL updates no table its own subquery reads: the counts come as a derived table.
        op.execute(
            "UPDATE users JOIN (SELECT referrer_id, count(*) AS n FROM users"
            " WHERE referrer_id IS NOT NULL GROUP BY referrer_id) AS counted"
            " ON counted.referrer_id = users.id SET users.referral_count = counted.n"
        )
    else:
        op.execute(
            "UPDATE users SET referral_count = "
            "(SELECT count(*) FROM users AS referred WHERE referred.referrer_id = users.id)"
        )
    # Newest first by (created_at, id), one referrer at a time: a page at any depth is a
    # range scan of this index.
    _replace_index(["referrer_id", "created_at", "id"])


def _replace_index(columns: list[str]) -> None:
    if is_mysql(op.get_bind().dialect.name):
        # The foreign key on referrer_id needs an index at every moment: one ALTER swaps it.
        op.execute(
            "ALTER TABLE users DROP INDEX ix_users_referrer_created,"
            f" ADD INDEX ix_users_referrer_created ({', '.join(columns)})"
        )
        return
    op.drop_index("ix_users_referrer_created", table_name="users")
    op.create_index("ix_users_referrer_created", "users", columns)


def downgrade() -> None:
    _replace_index(["referrer_id", "created_at"])
    op.drop_column("users", "referral_count")
