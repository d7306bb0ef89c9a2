"""The Bot API client's own behaviour: a reply Telegram asks us to hold back is sent later."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

from core.infra import metrics

if TYPE_CHECKING:
    from aiogram import Bot

log = logging.getLogger(__name__)


class WaitOnRetryAfter(BaseRequestMiddleware):
    """`429 retry_after`: wait as asked, then send the same request again (a few times, and
    never for longer than `max_wait` at once: a longer wait is an error for the caller)."""

    def __init__(self, *, max_wait: float = 30.0, attempts: int = 3) -> None:
        self.max_wait = max_wait
        self.attempts = attempts

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        for attempt in range(1, self.attempts + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                metrics.outside_failures.labels("telegram", "retry_after").inc()
                if attempt == self.attempts or exc.retry_after > self.max_wait:
                    raise
                log.warning(
                    "Telegram asks to wait %ss before %s", exc.retry_after, type(method).__name__
                )
                await asyncio.sleep(exc.retry_after)
        raise AssertionError("unreachable")  # pragma: no cover
