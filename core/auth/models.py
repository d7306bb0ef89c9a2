from __future__ import annotations

import datetime as dt

import ormar

from core.infra import clock
from core.infra.db import UTCDateTime, base_config
from core.users.models import User


class RefreshToken(ormar.Model):
    """A refresh token, stored as its SHA-256. One use each; a reused one revokes its family."""

    ormar_config = base_config.copy(
        tablename="refresh_tokens",
        constraints=[ormar.IndexColumns("user_id", name="ix_refresh_tokens_user_id")],
    )

    id: int = ormar.Integer(primary_key=True)
    user: User = ormar.ForeignKey(
        User,
        name="user_id",
        nullable=False,
        ondelete=ormar.ReferentialAction.CASCADE,
        related_name="refresh_tokens",
    )
    token_hash: str = ormar.String(max_length=64, unique=True)
    family: str = ormar.String(max_length=32, index=True)
    created_at: dt.datetime = UTCDateTime(default=clock.utcnow, nullable=False)
    expires_at: dt.datetime = UTCDateTime(nullable=False)
    used_at: dt.datetime | None = UTCDateTime(nullable=True)
    revoked_at: dt.datetime | None = UTCDateTime(nullable=True)
