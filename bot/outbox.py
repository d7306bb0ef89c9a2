"""Delivers the outbox: chat messages the core queued (a new referral, from chat or API)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from contextlib import suppress

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
)

from bot import heartbeat, render
from bot.i18n import get_i18n, pick_locale
from core.container import Core
from core.telegram.service import Delivery

log = logging.getLogger(__name__)


class OutboxPoller:
    """Polls the due rows every `interval` seconds, or at once when woken.

    A blocked bot (403) or a chat Telegram refuses (400) ends a row at once; other failures
    are retried with a growing pause, up to the core's attempt limit. The pause is stored
    with the row (`next_attempt_at`), so it holds across restarts and between bot processes.
    """

    def __init__(
        self, *, bot: Bot, core: Core, interval: float = 2.0, backoff: float = 5.0, batch: int = 50
    ) -> None:
        self.bot = bot
        self.core = core
        self.interval = interval
        self.backoff = backoff
        self.batch = batch
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Finish the current round and return from `run` (no cancellation mid-query)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        self._stopping = False
        while not self._stopping:
            heartbeat.beat()
            try:
                await self.deliver_pending()
            except Exception:
                log.exception("outbox poll failed; will try again")
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()

    async def deliver_pending(self) -> int:
        """Send what is due; returns how many were delivered."""
        delivered = 0
        for delivery in await self.core.telegram.pending_notifications(limit=self.batch):
            try:
                if await self._deliver(delivery):
                    delivered += 1
            except TelegramRetryAfter as exc:
                log.warning("Telegram asks to slow down for %ss", exc.retry_after)
                await asyncio.sleep(min(exc.retry_after, 60))
                break
            except Exception as exc:
                # A surprise still counts as an attempt: no row is retried forever.
                log.exception("notification %s could not be sent", delivery.id)
                await self._retry_later(delivery, repr(exc))
        return delivered

    async def _deliver(self, delivery: Delivery) -> bool:
        text = render.notification(
            delivery, i18n=get_i18n(), locale=pick_locale(delivery.language_code)
        )
        if delivery.chat_id is None or text is None:
            await self._give_up(delivery, "no chat" if text else f"unknown kind {delivery.kind}")
            return False
        try:
            await self.bot.send_message(delivery.chat_id, text)
        except TelegramRetryAfter:
            raise
        except (TelegramForbiddenError, TelegramBadRequest) as exc:
            # Blocked, deactivated, or a chat that is gone: retrying cannot help.
            log.warning(
                "notification %s to chat %s refused: %s", delivery.id, delivery.chat_id, exc
            )
            await self._give_up(delivery, str(exc))
            return False
        except TelegramAPIError as exc:
            log.warning("notification %s failed: %s", delivery.id, exc)
            await self._retry_later(delivery, str(exc))
            return False
        await self.core.telegram.mark_sent(notification_id=delivery.id)
        return True

    async def _retry_later(self, delivery: Delivery, error: str) -> None:
        """Count a failed attempt: pause the row with a growing backoff, or give it up."""
        pause = dt.timedelta(seconds=self.backoff * 2**delivery.attempts)
        gave_up = await self.core.telegram.mark_failed(
            notification_id=delivery.id, error=error, retry_after=pause
        )
        if gave_up:
            log.warning(
                "notification %s given up after %s attempts", delivery.id, delivery.attempts + 1
            )

    async def _give_up(self, delivery: Delivery, reason: str) -> None:
        await self.core.telegram.mark_failed(
            notification_id=delivery.id, error=reason, give_up=True
        )
