"""Telegram side of accounts: one-time linking tokens and deep links."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from core import clock, security
from core.telegram.errors import BotNotConfigured, TelegramAlreadyLinked
from core.telegram.models import TelegramLinkToken
from core.users.models import User

LINK_PREFIX = "link_"


@dataclass(frozen=True, slots=True)
class LinkInvite:
    url: str
    expires_at: dt.datetime


class TelegramService:
    def __init__(self, *, bot_username: str | None, link_lifetime: dt.timedelta) -> None:
        self.bot_username = bot_username
        self.link_lifetime = link_lifetime

    def deep_link(self, payload: str) -> str | None:
        if not self.bot_username:
            return None
        return f"https://t.me/{self.bot_username}?start={payload}"

    async def create_link(self, *, user: User) -> LinkInvite:
        """A one-time `t.me/<bot>?start=link_<token>` that attaches a chat to this account."""
        if not self.bot_username:
            raise BotNotConfigured()
        if user.telegram_id is not None:
            raise TelegramAlreadyLinked()
        token = security.new_opaque_token(24)  # 32 characters: the payload stays under 64
        now = clock.utcnow()
        expires_at = now + self.link_lifetime
        await TelegramLinkToken.objects.create(
            user=user.id,
            token_hash=security.token_digest(token),
            created_at=now,
            expires_at=expires_at,
        )
        url = self.deep_link(LINK_PREFIX + token)
        assert url is not None
        return LinkInvite(url=url, expires_at=expires_at)
