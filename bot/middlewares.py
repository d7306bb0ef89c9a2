"""Update middlewares: throttling per user, then the user as plain values and their account."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware
from aiogram.exceptions import TelegramAPIError
from aiogram.types import TelegramObject, Update, User
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.i18n import pick_locale, translate
from core import clock
from core.container import Core
from core.telegram.service import TelegramProfile

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class AccountMiddleware(BaseMiddleware):
    """Turns the Telegram user into a `TelegramProfile` and loads their account, if any."""

    def __init__(self, core: Core) -> None:
        self.core = core

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        sender: User | None = data.get("event_from_user")
        data["profile"] = data["account"] = None
        if sender is not None and not sender.is_bot:
            profile = TelegramProfile(
                telegram_id=sender.id,
                full_name=sender.full_name,
                username=sender.username,
                language_code=sender.language_code,
            )
            data["profile"] = profile
            account = await self.core.users.by_telegram_id(sender.id)
            if account is not None:
                account = await self.core.telegram.refresh_profile(user=account, profile=profile)
            data["account"] = account
        return await handler(event, data)


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    seconds: float


class Throttle:
    """A fixed-window counter per user: in-process, or in Redis when several bots share it."""

    def __init__(self, rate: Rate, redis: Redis | None = None) -> None:
        self.rate = rate
        self.redis = redis
        self._counts: dict[tuple[int, int], int] = {}

    async def hit(self, user_id: int) -> int:
        """Count one event; returns how many this user sent in the current window."""
        window = int(clock.timestamp() // self.rate.seconds)
        if self.redis is not None:
            key = f"bot:throttle:{user_id}:{window}"
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.incr(key)
                    pipe.expire(key, int(self.rate.seconds) + 1)
                    count, _ = await pipe.execute()
                return int(count)
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("throttle store unavailable, letting the update through: %r", exc)
                return 1
        if len(self._counts) > 10_000:
            self._counts = {key: n for key, n in self._counts.items() if key[1] == window}
        count = self._counts.get((user_id, window), 0) + 1
        self._counts[(user_id, window)] = count
        return count

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


class ThrottlingMiddleware(BaseMiddleware):
    """Drops a flooding user's updates; they hear about it once per window, others never."""

    def __init__(self, throttle: Throttle) -> None:
        self.throttle = throttle

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        sender: User | None = data.get("event_from_user")
        if sender is None:
            return await handler(event, data)
        count = await self.throttle.hit(sender.id)
        if count <= self.throttle.rate.count:
            return await handler(event, data)
        assert isinstance(event, Update)
        text = translate(
            "Too many messages; please wait a few seconds.",
            locale=pick_locale(sender.language_code),
        )
        with suppress(TelegramAPIError):
            if event.callback_query is not None:
                await event.callback_query.answer(text)
            elif event.message is not None and count == self.throttle.rate.count + 1:
                await event.message.answer(text)
        return None
