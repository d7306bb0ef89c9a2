"""The campaigns table: one row per program; id 1 (key `default`) is made by migration 0011
and is never ended."""

from __future__ import annotations

import sqlalchemy as sa

from core.infra.db import UTCDateTimeType, metadata

DEFAULT_ID = 1
DEFAULT_KEY = "default"

ACTIVE = "active"
PAUSED = "paused"
ENDED = "ended"
STATUSES = (ACTIVE, PAUSED, ENDED)

# The bot's job for a campaign that names a Telegram chat (core.invites): check the chat,
# and revoke the campaign's invite links once it is not running. Queued by every change.
TELEGRAM_CHAT = "telegram.chat"

campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("starts_at", UTCDateTimeType, nullable=True),
    sa.Column("ends_at", UTCDateTimeType, nullable=True),
    # What an operator set (core.campaigns.rules.Rules); what is left out follows the settings.
    sa.Column("rules", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTimeType, nullable=False),
    sa.Column("updated_at", UTCDateTimeType, nullable=False),
    sa.CheckConstraint("status IN ('active', 'paused', 'ended')", name="status"),
)
