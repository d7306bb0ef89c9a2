"""Sends the chat messages the core queued (jobs of kind TELEGRAM_MESSAGE): a new referral,
from chat or the API. Only a process holding the bot token runs this."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
)

from bot import render
from bot.i18n import get_i18n, pick_locale
from core.container import Core
from core.jobs.queue import ClaimedJob
from core.jobs.worker import GiveUp, RetryLater

log = logging.getLogger(__name__)


class Notifier:
    """The job handler. A blocked bot (403) or a chat Telegram refuses (400) fails the job at
    once; other failures are retried on the job schedule, a 429 after the pause it asks for."""

    def __init__(self, *, bot: Bot, core: Core) -> None:
        self.bot = bot
        self.core = core

    async def send(self, job: ClaimedJob) -> None:
        delivery = await self.core.telegram.delivery(job.payload)
        if delivery is None or delivery.chat_id is None:
            raise GiveUp("the recipient has no chat")
        text = render.notification(
            delivery, i18n=get_i18n(), locale=pick_locale(delivery.language_code)
        )
        if text is None:
            raise GiveUp(f"unknown message {delivery.kind!r}")
        try:
            await self.bot.send_message(delivery.chat_id, text)
        except TelegramRetryAfter as exc:
            raise RetryLater("Telegram asked to slow down", after=exc.retry_after) from None
        except (TelegramForbiddenError, TelegramBadRequest) as exc:
            # Blocked, deactivated, or a chat that is gone: retrying cannot help.
            log.warning("message %s to chat %s refused: %s", job.id, delivery.chat_id, exc)
            raise GiveUp(str(exc)) from None
        except TelegramAPIError as exc:
            raise RetryLater(str(exc)) from None
