"""The core's `ChatApi` over the Bot API: invite links, members and join requests of a
campaign's chat. Every call goes through the bot's session (bounded, `retry_after` waited
out a few times); what Telegram refuses is translated into what the core understands."""

from __future__ import annotations

import datetime as dt
import logging

from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
)
from aiogram.types import ChatMemberAdministrator, ChatMemberRestricted

from core.infra import clock
from core.invites.chat import ChatNotReady, ChatState, TelegramUnavailable
from core.telegram.tables import NOT_ADMIN, READY, UNREACHABLE

log = logging.getLogger(__name__)

MEMBER_STATUSES = frozenset({"creator", "administrator", "member"})


def is_member(member: object) -> bool:
    """A ChatMember* as "in the chat": a restricted member is, a left or banned one is not."""
    status = getattr(member, "status", None)
    if isinstance(member, ChatMemberRestricted):
        return bool(member.is_member)
    return status in MEMBER_STATUSES


# Telegram did not answer, answered 5xx or 429 past the session's own waits, or answered
# something that is not the Bot API (a proxy's error page): try again later.
FAILED = (TelegramAPIError, ClientDecodeError)


def unavailable(exc: TelegramAPIError | ClientDecodeError) -> TelegramUnavailable:
    error = TelegramUnavailable(f"{type(exc).__name__}: {getattr(exc, 'message', exc)}")
    error.retry_after = exc.retry_after if isinstance(exc, TelegramRetryAfter) else None
    return error


class BotChatApi:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def chat_state(self, chat_id: int) -> ChatState:
        try:
            chat = await self.bot.get_chat(chat_id)
            me = await self.bot.get_chat_member(chat_id, self.bot.id)
        except (TelegramBadRequest, TelegramForbiddenError) as exc:
            return ChatState(UNREACHABLE, problem=f"Telegram says: {exc.message}")
        except FAILED as exc:
            raise unavailable(exc) from None
        title = chat.title or chat.username
        if me.status == "creator" or (
            isinstance(me, ChatMemberAdministrator) and me.can_invite_users
        ):
            return ChatState(READY, title=title)
        if isinstance(me, ChatMemberAdministrator):
            problem = "the bot is an administrator without the right to invite users"
        else:
            problem = "the bot is not an administrator of this chat"
        return ChatState(NOT_ADMIN, title=title, problem=problem)

    async def create_link(
        self, chat_id: int, *, name: str, expire_date: dt.datetime, join_request: bool
    ) -> str:
        try:
            made = await self.bot.create_chat_invite_link(
                chat_id,
                name=name[:32],
                expire_date=expire_date,
                creates_join_request=join_request or None,
            )
        except (TelegramBadRequest, TelegramForbiddenError) as exc:
            raise ChatNotReady(f"Telegram says: {exc.message}") from None
        except FAILED as exc:
            raise unavailable(exc) from None
        return made.invite_link

    async def link_alive(self, chat_id: int, link: str, *, name: str) -> bool:
        try:
            found = await self.bot.edit_chat_invite_link(chat_id, link, name=name[:32])
        except TelegramBadRequest:
            return False  # revoked, expired or unknown: a new one is made
        except TelegramForbiddenError as exc:
            raise ChatNotReady(f"Telegram says: {exc.message}") from None
        except FAILED as exc:
            raise unavailable(exc) from None
        expired = found.expire_date is not None and found.expire_date <= clock.utcnow()
        return not found.is_revoked and not expired

    async def revoke_link(self, chat_id: int, link: str) -> None:
        try:
            await self.bot.revoke_chat_invite_link(chat_id, link)
        except (TelegramBadRequest, TelegramForbiddenError) as exc:
            log.info("link of chat %s not revoked (%s): it is dead already", chat_id, exc.message)
        except FAILED as exc:
            raise unavailable(exc) from None

    async def is_member(self, chat_id: int, telegram_id: int) -> bool:
        try:
            member = await self.bot.get_chat_member(chat_id, telegram_id)
        except TelegramBadRequest:
            return False  # "user not found": never was, or is gone
        except FAILED as exc:  # the bot lost the chat, or Telegram is down: later
            raise unavailable(exc) from None
        return is_member(member)

    async def decide_join(self, chat_id: int, telegram_id: int, *, approve: bool) -> None:
        try:
            if approve:
                await self.bot.approve_chat_join_request(chat_id, telegram_id)
            else:
                await self.bot.decline_chat_join_request(chat_id, telegram_id)
        except TelegramBadRequest as exc:
            # HIDE_REQUESTER_MISSING, USER_ALREADY_PARTICIPANT: the request is gone already.
            log.info("join request in chat %s already settled: %s", chat_id, exc.message)
        except FAILED as exc:
            raise unavailable(exc) from None
