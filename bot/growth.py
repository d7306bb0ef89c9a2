"""The bot's side of a campaign's chat: the jobs that need Telegram (a stay checked, a join
request decided, a changed campaign's chat checked and its links revoked), and the update
types the bot asks for (`chat_member`, `chat_join_request` only while a campaign names a
chat)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.methods import GetUpdates, Response, SetWebhook, TelegramMethod
from aiogram.methods.base import TelegramType

from bot.chat_api import BotChatApi
from core.campaigns.tables import TELEGRAM_CHAT
from core.container import Core
from core.invites.chat import ChatNotReady, TelegramUnavailable
from core.jobs.queue import ClaimedJob
from core.jobs.worker import GiveUp, Handler, RetryLater
from core.telegram.joins import TELEGRAM_JOIN_DECISION, TELEGRAM_STAY

if TYPE_CHECKING:
    from aiogram import Bot

log = logging.getLogger(__name__)

GROWTH_UPDATES = ("chat_member", "chat_join_request")


class ChatUpdates(BaseRequestMiddleware):
    """Keeps `allowed_updates` of getUpdates (and of setWebhook) to what is needed: the
    growth updates only while some campaign (not ended) names a chat, as `Invites.named_chats`
    says (read at most every few seconds; the last answer stands while the database does not
    answer)."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.used: list[str] = []  # every update type the dispatcher's handlers take
        self.chats: frozenset[int] = frozenset()
        # Set by a webhook bot: registers the webhook again when the wanted updates change.
        self.resubscribe: Callable[[list[str]], Awaitable[None]] | None = None

    async def refresh(self, *, force: bool = False) -> bool:
        """The chats as they are now (`force`: read them again); whether the growth updates
        changed."""
        before = bool(self.chats)
        try:
            self.chats = frozenset(await self.core.invites.named_chats(fresh=force))
        except Exception as exc:  # the database is away: keep what was read last
            log.warning("cannot read the campaigns' chats: %r", exc)
            return False
        return bool(self.chats) != before

    def allowed(self) -> list[str]:
        return [name for name in self.used if self.chats or name not in GROWTH_UPDATES]

    async def changed(self) -> None:
        """After a campaign's change: a webhook bot re-registers with the new update types
        (a polling bot asks for them with its next getUpdates)."""
        if await self.refresh(force=True) and self.resubscribe is not None:
            await self.resubscribe(self.allowed())

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if isinstance(method, GetUpdates | SetWebhook) and self.used:
            await self.refresh()
            method.allowed_updates = self.allowed()
        return await make_request(bot, method)


class GrowthJobs:
    """The job handlers, each turning a Telegram outage into a retry (after what Telegram
    asked to wait) and a malformed payload into a failure."""

    def __init__(self, *, bot: Bot, core: Core, updates: ChatUpdates) -> None:
        self.core = core
        self.api = BotChatApi(bot)
        self.updates = updates

    def handlers(self) -> dict[str, Handler]:
        return {
            TELEGRAM_STAY: self.stay,
            TELEGRAM_JOIN_DECISION: self.decision,
            TELEGRAM_CHAT: self.chat,
        }

    async def stay(self, job: ClaimedJob) -> None:
        outcome = await _guarded(self.core.invites.stay_due, job.payload, self.api)
        log.info("stay check %s: %s", job.id, outcome)

    async def decision(self, job: ClaimedJob) -> None:
        await _guarded(self.core.invites.decision_due, job.payload, self.api)

    async def chat(self, job: ClaimedJob) -> None:
        try:
            campaign_id = int(job.payload["campaign_id"])
        except (KeyError, TypeError, ValueError):
            raise GiveUp("malformed payload") from None
        await _guarded(self.core.invites.campaign_changed, campaign_id, self.api)
        await self.updates.changed()


async def _guarded(run: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    try:
        return await run(*args)
    except TelegramUnavailable as exc:
        raise RetryLater(str(exc), after=exc.retry_after) from None
    except ChatNotReady as exc:  # the bot lost its rights: retried, the operator was told
        raise RetryLater(str(exc)) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise GiveUp(f"malformed payload: {exc!r}") from None
