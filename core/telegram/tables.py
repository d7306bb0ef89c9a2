"""Growth inside Telegram (BOT.md v1.2): the chats campaigns name, each participant's invite
link, and each person's membership of a chat as the bot last saw it.

A join counts once: each chat update is applied once (`chat_updates`, its id inserted in the
same transaction: Telegram redelivers, and two bot replicas may both see one), and a person's
membership of a chat is one row (`chat_members`), changed by its state (a join of a member
again, a leave of someone gone, change nothing). Update ids cannot order them: after a week
without updates Telegram starts its ids again from a random number.
"""

from __future__ import annotations

import sqlalchemy as sa

from core.infra.db import UTCDateTimeType, metadata

# A chat's readiness, as the bot last checked it (getChatMember of itself).
READY = "ready"
NOT_ADMIN = "not_admin"  # the bot is not an administrator who may invite users
UNREACHABLE = "unreachable"  # no such chat, or the bot is not in it
UNCHECKED = "unchecked"

# A person's membership of a chat.
MEMBER = "member"
LEFT = "left"
REQUESTED = "requested"  # a join request waiting (for the operator's review, or for Telegram)

telegram_chats = sa.Table(
    "telegram_chats",
    metadata,
    sa.Column("chat_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("title", sa.String(255), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("problem", sa.String(200), nullable=True),
    sa.Column("checked_at", UTCDateTimeType, nullable=True),
)

# One link per participant and campaign, made by the bot and reused; made again (the row
# updated) when its code is no longer live or Telegram revoked it.
invite_links = sa.Table(
    "invite_links",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("campaign_id", sa.Integer, sa.ForeignKey("campaigns.id"), nullable=False),
    sa.Column("chat_id", sa.BigInteger, nullable=False),
    sa.Column("link", sa.String(255), nullable=False, unique=True),
    # The code the link is named with: a join through it signs up with this code.
    sa.Column("code", sa.String(32), nullable=False),
    sa.Column("join_request", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTimeType, nullable=False),
    sa.Column("revoked_at", UTCDateTimeType, nullable=True),
    sa.UniqueConstraint("user_id", "campaign_id"),
    sa.Index("ix_invite_links_campaign", "campaign_id", "revoked_at"),
)

chat_members = sa.Table(
    "chat_members",
    metadata,
    sa.Column("chat_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("telegram_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("status", sa.String(16), nullable=False),
    # The referral this person's join made (the referred user's id), and by which link.
    sa.Column(
        "referral_id", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    ),
    sa.Column(
        "link_id", sa.Integer, sa.ForeignKey("invite_links.id", ondelete="SET NULL"), nullable=True
    ),
    # Counts joins through the referral's link: a stay check of an earlier join is stale.
    sa.Column("joins", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("joined_at", UTCDateTimeType, nullable=True),
    sa.Column("updated_at", UTCDateTimeType, nullable=False),
    sa.Index("ix_chat_members_referral", "referral_id"),
)

# The chat updates applied, by Telegram's id, kept a few days (Telegram keeps an update for
# redelivery 24 hours) and then removed by the workers' housekeeping.
chat_updates = sa.Table(
    "chat_updates",
    metadata,
    sa.Column("update_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("applied_at", UTCDateTimeType, nullable=False),
    sa.Index("ix_chat_updates_applied_at", "applied_at"),
)
UPDATES_KEPT_DAYS = 3
