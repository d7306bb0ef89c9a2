"""Telegram side of accounts: deep links, one-time linking tokens, and chat notifications."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core.infra.db import Read, database, execute, is_valid_id
from core.jobs.queue import JobQueue
from core.referrals.models import ReferralCode
from core.referrals.rules import RESERVED_PREFIX
from core.telegram.errors import (
    BotNotConfigured,
    LinkTokenExpired,
    LinkTokenInvalid,
    LinkTokenUsed,
    TelegramAccountTaken,
    TelegramAlreadyLinked,
)
from core.users import tokens
from core.users.models import Person, User
from core.users.names import clean_name

# The /start payload of a chat-link: the prefix no referral code may take.
LINK_PREFIX = RESERVED_PREFIX
LINK_PURPOSE = "telegram_link"
# The job kind of chat messages: taken only by processes that hold the bot token.
TELEGRAM_MESSAGE = "telegram.message"
NEW_REFERRAL = "new_referral"

_users = User.ormar_config.table
_codes = ReferralCode.ormar_config.table
_RECIPIENT = Read(
    sa.select(_users.c.telegram_id, _users.c.language_code).where(
        _users.c.id == sa.bindparam("user_id"), _users.c.telegram_id.is_not(None)
    )
)


@dataclass(frozen=True, slots=True)
class LinkInvite:
    url: str
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class TelegramProfile:
    """A Telegram user as plain values: what the bot hands to the core."""

    telegram_id: int
    full_name: str | None = None
    username: str | None = None
    language_code: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A queued chat message with what the bot needs to send it."""

    kind: str
    chat_id: int | None
    language_code: str | None
    payload: dict[str, Any] = field(default_factory=dict)


class TelegramService:
    def __init__(
        self,
        *,
        bot_username: str | None,
        link_lifetime: dt.timedelta,
    ) -> None:
        self.bot_username = bot_username
        self.link_lifetime = link_lifetime

    def deep_link(self, payload: str) -> str | None:
        if not self.bot_username:
            return None
        return f"https://t.me/{self.bot_username}?start={payload}"

    # -- account linking ----------------------------------------------------------------

    async def create_link(self, *, user: Person) -> LinkInvite:
        """A one-time `t.me/<bot>?start=link_<token>` that attaches a chat to this account."""
        if not self.bot_username:
            raise BotNotConfigured()
        if user.telegram_id is not None:
            raise TelegramAlreadyLinked()
        # 24 bytes, 32 characters: the /start payload stays under Telegram's 64.
        token, expires_at = await tokens.issue(user.id, LINK_PURPOSE, self.link_lifetime, size=24)
        url = self.deep_link(LINK_PREFIX + token)
        assert url is not None
        return LinkInvite(url=url, expires_at=expires_at)

    async def redeem_link(self, *, token: str, profile: TelegramProfile) -> User:
        """Attach this Telegram account to the token's user; the token works once.

        A bare bot account of the same person (made by /start, with no email, code, referrer
        or referrals) is folded into the linked account; any other owner is refused.
        """
        attach = (
            sa.update(_users)
            .where(
                sa.or_(_users.c.telegram_id.is_(None), _users.c.telegram_id == profile.telegram_id)
            )
            .values(
                telegram_id=profile.telegram_id,
                telegram_username=_clip(profile.username, 64),
                language_code=sa.func.coalesce(
                    _clip(profile.language_code, 16), _users.c.language_code
                ),
                full_name=sa.func.coalesce(_users.c.full_name, clean_name(profile.full_name)),
            )
            .returning(_users.c.id)
        )
        try:
            async with database.transaction(), database.connection() as connection:
                # Spent in this transaction: two chats racing on it cannot both win, and a
                # refused attach leaves it unused.
                owner_id = await tokens.spend(token, LINK_PURPOSE)
                if owner_id is None:
                    raise await self._link_refusal(token)
                current = await User.objects.get_or_none(telegram_id=profile.telegram_id)
                if current is not None and current.id != owner_id:
                    if not await self._is_bare(connection, current):
                        raise TelegramAccountTaken()
                    await execute(connection, sa.delete(_users).where(_users.c.id == current.id))
                attached = await execute(connection, attach.where(_users.c.id == owner_id))
                if attached.first() is None:
                    raise TelegramAlreadyLinked(
                        "That account is already linked to another Telegram account."
                    )
        except IntegrityError:
            raise TelegramAccountTaken() from None
        return await User.objects.get(id=owner_id)

    @staticmethod
    async def _link_refusal(token: str) -> LinkTokenInvalid:
        state = await tokens.state(token, LINK_PURPOSE)
        if state == "unknown":
            return LinkTokenInvalid("This link is unknown.")
        return LinkTokenUsed() if state == "used" else LinkTokenExpired()

    @staticmethod
    async def _is_bare(connection: Any, user: User) -> bool:
        if user.email is not None or user.referrer is not None:
            return False
        has_codes = sa.select(_codes.c.id).where(_codes.c.owner_id == user.id).limit(1)
        has_referrals = sa.select(_users.c.id).where(_users.c.referrer_id == user.id).limit(1)
        for probe in (has_codes, has_referrals):
            if (await execute(connection, probe)).first() is not None:
                return False
        return True

    # -- chat accounts ------------------------------------------------------------------

    async def refresh_profile(self, *, user: User, profile: TelegramProfile) -> User:
        """Keep the username and language current (chat messages are written in that language)."""
        username = _clip(profile.username, 64)
        language = _clip(profile.language_code, 16) or user.language_code
        if (username, language) == (user.telegram_username, user.language_code):
            return user
        return await user.update(telegram_username=username, language_code=language)

    async def is_own_code(self, *, user_id: int, code: str) -> bool:
        """Whether this code value was ever issued to this user (for `/start <code>`)."""
        return await ReferralCode.objects.filter(owner=user_id, code=code).exists()

    # -- notifications (jobs of kind TELEGRAM_MESSAGE, sent by the bot process) -----------

    @staticmethod
    async def notify(*, jobs: JobQueue, recipient_id: int, message: str, **values: Any) -> None:
        """Queue a chat message, in the caller's transaction; the bot process sends it."""
        await jobs.enqueue(
            TELEGRAM_MESSAGE, {"recipient_id": recipient_id, "message": message, **values}
        )

    @staticmethod
    async def delivery(payload: dict[str, Any]) -> Delivery | None:
        """What a queued message needs to be sent: the recipient's chat and language (None
        when the recipient is gone)."""
        recipient_id = payload.get("recipient_id")
        if not isinstance(recipient_id, int) or not is_valid_id(recipient_id):
            return None
        recipient = await _RECIPIENT.first(user_id=recipient_id)
        if recipient is None:
            return None
        return Delivery(
            kind=str(payload.get("message")),
            chat_id=recipient[0],
            language_code=recipient[1],
            payload=dict(payload),
        )


def _clip(value: str | None, length: int) -> str | None:
    return (value or "")[:length] or None
