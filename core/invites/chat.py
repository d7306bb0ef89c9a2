"""What the core asks of Telegram for a campaign's chat: the bot implements it over the Bot
API (`bot.chat_api`); the core never imports a chat framework."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from core.infra.errors import Unavailable


@dataclass(frozen=True, slots=True)
class ChatState:
    """The chat as the bot sees it: its title, and whether it may make invite links there
    (`core.telegram.tables`: READY, NOT_ADMIN, UNREACHABLE), with what is wrong in words."""

    status: str
    title: str | None = None
    problem: str | None = None


class ChatNotReady(Unavailable):
    """The bot cannot make invite links in the campaign's chat (not an administrator with the
    right to invite users, or not in the chat at all)."""

    code = "chat_not_ready"
    message = "The bot cannot invite people to this campaign's chat yet."


class TelegramUnavailable(Unavailable):
    """Telegram did not answer in time, or asked to wait longer than a call may: try later."""

    code = "telegram_unavailable"
    message = "Telegram is not answering; try again later."
    retry_after: float | None = None  # what Telegram asked to wait, when it did


class ChatApi(Protocol):
    async def chat_state(self, chat_id: int) -> ChatState: ...

    async def create_link(
        self, chat_id: int, *, name: str, expire_date: dt.datetime, join_request: bool
    ) -> str:
        """A new invite link (`ChatNotReady` when the bot may not make one)."""
        ...

    async def link_alive(self, chat_id: int, link: str, *, name: str) -> bool:
        """Whether Telegram still lets people join by this link (not revoked, not expired)."""
        ...

    async def revoke_link(self, chat_id: int, link: str) -> None: ...

    async def is_member(self, chat_id: int, telegram_id: int) -> bool: ...

    async def decide_join(self, chat_id: int, telegram_id: int, *, approve: bool) -> None:
        """Approve or decline a join request (gone already: nothing to do, no error)."""
        ...
