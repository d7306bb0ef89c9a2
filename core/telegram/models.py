from __future__ import annotations

import datetime as dt
from typing import Any

import ormar
import sqlalchemy as sa

from core import clock
from core.db import UTCDateTime, base_config
from core.users.models import User


class TelegramLinkToken(ormar.Model):
    """A one-time token behind `t.me/<bot>?start=link_<token>`, stored as its SHA-256."""

    ormar_config = base_config.copy(
        tablename="telegram_link_tokens",
        constraints=[ormar.IndexColumns("user_id", name="ix_telegram_link_tokens_user_id")],
    )

    id: int = ormar.Integer(primary_key=True)
    user: User = ormar.ForeignKey(
        User,
        name="user_id",
        nullable=False,
        ondelete=ormar.ReferentialAction.CASCADE,
        related_name="telegram_link_tokens",
    )
    token_hash: str = ormar.String(max_length=64, unique=True)
    created_at: dt.datetime = UTCDateTime(default=clock.utcnow, nullable=False)
    expires_at: dt.datetime = UTCDateTime(nullable=False)
    used_at: dt.datetime | None = UTCDateTime(nullable=True)


class Notification(ormar.Model):
    """Outbox of chat messages: written with the change that causes them, sent by the bot."""

    ormar_config = base_config.copy(
        tablename="notifications",
        constraints=[
            ormar.IndexColumns("recipient_id", name="ix_notifications_recipient_id"),
            # The bot's poll reads only the pending rows.
            ormar.IndexColumns(
                "id",
                name="ix_notifications_pending",
                postgresql_where=sa.text("sent_at IS NULL AND failed_at IS NULL"),
                sqlite_where=sa.text("sent_at IS NULL AND failed_at IS NULL"),
            ),
            # ... and of those only the ones whose back-off is over.
            ormar.IndexColumns(
                "next_attempt_at",
                "id",
                name="ix_notifications_due",
                postgresql_where=sa.text("sent_at IS NULL AND failed_at IS NULL"),
                sqlite_where=sa.text("sent_at IS NULL AND failed_at IS NULL"),
            ),
        ],
    )

    id: int = ormar.Integer(primary_key=True)
    recipient: User = ormar.ForeignKey(
        User,
        name="recipient_id",
        nullable=False,
        ondelete=ormar.ReferentialAction.CASCADE,
        related_name="notifications",
    )
    kind: str = ormar.String(max_length=32)
    payload: dict[str, Any] = ormar.JSON(default=dict)
    created_at: dt.datetime = UTCDateTime(default=clock.utcnow, nullable=False)
    attempts: int = ormar.Integer(default=0, server_default=sa.text("0"), nullable=False)
    # Exactly one of these ends a row's life: delivered, or given up (blocked bot, too many tries).
    sent_at: dt.datetime | None = UTCDateTime(nullable=True)
    failed_at: dt.datetime | None = UTCDateTime(nullable=True)
    last_error: str | None = ormar.String(max_length=500, nullable=True)
    # Not tried again before this: the back-off after a failed attempt.
    next_attempt_at: dt.datetime | None = UTCDateTime(nullable=True)
