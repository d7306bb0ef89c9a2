"""Growth inside Telegram (BOT.md v1.2): the chats campaigns name, participants' invite
links, people's membership of those chats, the chat updates applied (each once), and a
referral's `left_at`.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from core.infra.db import TIMESTAMP

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "telegram_chats",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("title", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("problem", sa.String(length=200), nullable=True),
        sa.Column("checked_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_telegram_chats")),
    )
    op.create_table(
        "invite_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("link", sa.String(length=255), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("join_request", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_invite_links_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_invite_links_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invite_links")),
        sa.UniqueConstraint("link", name=op.f("uq_invite_links_link")),
        sa.UniqueConstraint("user_id", "campaign_id", name=op.f("uq_invite_links_user_id_campaign_id")),
    )
    op.create_index(
        "ix_invite_links_campaign", "invite_links", ["campaign_id", "revoked_at"], unique=False
    )
    op.create_table(
        "chat_members",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=True),
        sa.Column("link_id", sa.Integer(), nullable=True),
        sa.Column("joins", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("joined_at", TIMESTAMP, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["invite_links.id"],
            name=op.f("fk_chat_members_link_id_invite_links"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["users.id"],
            name=op.f("fk_chat_members_referral_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("chat_id", "telegram_id", name=op.f("pk_chat_members")),
    )
    op.create_index("ix_chat_members_referral", "chat_members", ["referral_id"], unique=False)
    op.create_table(
        "chat_updates",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("applied_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_chat_updates")),
    )
    op.create_index("ix_chat_updates_applied_at", "chat_updates", ["applied_at"], unique=False)
    # A plain nullable column: no table rebuild on SQLite (ADD COLUMN), none elsewhere.
    op.add_column("referrals", sa.Column("left_at", TIMESTAMP, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("referrals") as batch:
        batch.drop_column("left_at")
    # Their indexes go with them (MySQL refuses to drop one a foreign key needs first).
    op.drop_table("chat_updates")
    op.drop_table("chat_members")
    op.drop_table("invite_links")
    op.drop_table("telegram_chats")
