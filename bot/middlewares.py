"""Update middlewares: throttling per user, then the user as plain values and their account."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.flags import get_flag
from aiogram.exceptions import TelegramAPIError
from aiogram.types import TelegramObject, Update, User

from bot.accounts import ensure_account
from bot.i18n import pick_locale, translate
from core.container import Core
from core.infra import clock, logs, metrics
from core.infra.ratelimit import Counters, Limit, Rate
from core.telegram.service import TelegramProfile

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def is_chat_update(event: TelegramObject) -> bool:
    """A change in a chat the bot administers (a join, a leave, a join request): not a person
    talking to the bot. Its sender may be an administrator letting many people in at once,
    so it is neither throttled nor refused for the sender's account."""
    return isinstance(event, Update) and (
        event.chat_member is not None
        or event.chat_join_request is not None
        or event.my_chat_member is not None
    )


class AccountMiddleware(BaseMiddleware):
    """Turns the Telegram user into a `TelegramProfile` and loads their account, if any."""

    def __init__(self, core: Core) -> None:
        self.core = core

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        sender: User | None = data.get("event_from_user")
        data["profile"] = data["account"] = None
        if sender is not None and not sender.is_bot and not is_chat_update(event):
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
            if account is not None and account.blocked_at is not None:
                await _tell_blocked(event, sender)
                return None  # a blocked account gets this answer and nothing else
        return await handler(event, data)


# The flag of a handler that acts for the sender's account (`EnsureAccount` makes one).
NEEDS_ACCOUNT = {"account": "ensure"}


class EnsureAccount(BaseMiddleware):
    """Before a handler flagged `NEEDS_ACCOUNT`: the sender's account, made without a referrer
    for someone who skipped /start (registered on messages and button presses)."""

    def __init__(self, core: Core) -> None:
        self.core = core

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if get_flag(data, "account") == "ensure" and data.get("account") is None:
            profile: TelegramProfile | None = data.get("profile")
            if profile is None:
                return None  # no person sent it (a channel post, another bot)
            data["account"] = await ensure_account(self.core, profile, None)
        return await handler(event, data)


async def _tell_blocked(event: TelegramObject, sender: User) -> None:
    text = translate(
        "Your account is blocked. Contact the service's support.",
        locale=pick_locale(sender.language_code),
    )
    with suppress(TelegramAPIError):
        if isinstance(event, Update) and event.callback_query is not None:
            await event.callback_query.answer(text, show_alert=True)
        elif isinstance(event, Update) and event.message is not None:
            await event.message.answer(text)


class Throttle:
    """Updates per Telegram user, counted by the core's GCRA limiter: in Redis when the bot
    has one (shared by replicas, in-process while Redis fails), else in process."""

    def __init__(self, rate: Rate, counters: Counters) -> None:
        self.rate = rate
        self.limit = Limit("bot_updates", rate)
        self.counters = counters
        self._told: dict[int, float] = {}  # user -> when they last heard "too many"

    async def hit(self, user_id: int) -> bool:
        """Count one update; whether it may be handled."""
        now_ms = int(clock.timestamp() * 1000)
        return await self.counters.acquire(((self.limit, str(user_id)),), now_ms) == 0

    def should_tell(self, user_id: int) -> bool:
        """Tell a flooding user once per window, not once per dropped update."""
        now = clock.timestamp()
        if now - self._told.get(user_id, 0.0) < self.rate.seconds:
            return False
        if len(self._told) > 10_000:
            self._told.clear()
        self._told[user_id] = now
        return True

    async def close(self) -> None:
        await self.counters.close()


class UpdateContextMiddleware(BaseMiddleware):
    """Every log line written while an update is handled carries its id; each is counted."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        token = logs.update_id.set(event.update_id if isinstance(event, Update) else None)
        try:
            result = await handler(event, data)
        except Exception:
            metrics.bot_updates.labels("failed").inc()
            raise
        finally:
            logs.update_id.reset(token)
        metrics.bot_updates.labels("handled").inc()
        return result


class ThrottlingMiddleware(BaseMiddleware):
    """Drops a flooding user's updates; they hear about it once per window, others never."""

    def __init__(self, throttle: Throttle) -> None:
        self.throttle = throttle

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        sender: User | None = data.get("event_from_user")
        if sender is None or is_chat_update(event):
            return await handler(event, data)
        if await self.throttle.hit(sender.id):
            return await handler(event, data)
        metrics.bot_updates.labels("throttled").inc()
        assert isinstance(event, Update)
        text = translate(
            "Too many messages; please wait a few seconds.",
            locale=pick_locale(sender.language_code),
        )
        with suppress(TelegramAPIError):
            if event.callback_query is not None:  # always answered: it stops the spinner
                await event.callback_query.answer(text)
            elif event.message is not None and self.throttle.should_tell(sender.id):
                await event.message.answer(text)
        return None
