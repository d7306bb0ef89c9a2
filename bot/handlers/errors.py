"""One place that turns failures into answers: domain errors into plain words, the rest into
"something went wrong" (logged with its traceback)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress

from aiogram import Bot, Dispatcher, Router
from aiogram.exceptions import AiogramError
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import Chat, ErrorEvent, InlineKeyboardMarkup, ReplyKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from bot import keyboards
from bot.handlers.common import menu
from bot.middlewares import is_chat_update
from core.campaigns.errors import CampaignNotActive
from core.container import Core
from core.infra.errors import DomainError, RateLimited
from core.invites.chat import TelegramUnavailable
from core.referrals.errors import (
    ActiveCodeExists,
    InvalidCodeRequest,
    NoActiveCode,
    ReferralCodeDeleted,
    ReferralCodeExhausted,
    ReferralCodeExpired,
    ReferralCodeInvalid,
)
from core.telegram.errors import (
    LinkTokenExpired,
    LinkTokenInvalid,
    LinkTokenUsed,
    TelegramAccountTaken,
    TelegramAlreadyLinked,
)
from core.users.errors import AlreadyRegistered, OwnCode

log = logging.getLogger(__name__)

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup


def _continue() -> str:
    return "\n" + _("You can still join without a code.")


# Most specific first: a subclass is looked up before its base.
FRIENDLY: dict[type[DomainError], Callable[[], str]] = {
    ReferralCodeInvalid: lambda: _("This referral code does not exist.") + _continue(),
    ReferralCodeDeleted: lambda: _("This referral code was deleted by its owner.") + _continue(),
    ReferralCodeExpired: lambda: _("This referral code has expired.") + _continue(),
    ReferralCodeExhausted: lambda: (
        _("This referral code has already been used as many times as allowed.") + _continue()
    ),
    AlreadyRegistered: lambda: _(
        "You are already registered. A referrer is set only when an account is created."
    ),
    OwnCode: lambda: _("This is your own referral code: share it with friends instead."),
    ActiveCodeExists: lambda: _(
        "You already have an active code; delete it before creating a new one."
    ),
    NoActiveCode: lambda: _("You have no active referral code."),
    InvalidCodeRequest: lambda: _("That expiry is not allowed: choose 1 to 365 days."),
    LinkTokenExpired: lambda: _("This link has expired. Request a new link and open it again."),
    LinkTokenUsed: lambda: _(
        "This link has already been used. Request a new link and open it again."
    ),
    LinkTokenInvalid: lambda: _("This link is not valid. Request a new link and open it again."),
    TelegramAccountTaken: lambda: _(
        "This Telegram account already belongs to another account, so it cannot be linked."
    ),
    TelegramAlreadyLinked: lambda: _("That account is already linked to another Telegram account."),
    RateLimited: lambda: _("Too many messages; please wait a few seconds."),
    CampaignNotActive: lambda: (
        _("The campaign of this referral code is not running right now.") + _continue()
    ),
    TelegramUnavailable: lambda: _("Telegram is not answering; please try again in a minute."),
}

REFERRAL_CODE_ERRORS = (
    ReferralCodeInvalid,
    ReferralCodeExpired,
    ReferralCodeExhausted,
    CampaignNotActive,
)


def friendly_text(error: DomainError) -> str:
    for kind in type(error).__mro__:
        if kind in FRIENDLY:
            return FRIENDLY[kind]()
    return _("That could not be done. Please try again.")


async def _menu(core: Core | None) -> ReplyKeyboardMarkup:
    """The menu after an error: the plain one when even naming the chat fails (the error may
    be the database's)."""
    if core is not None:
        with suppress(Exception):
            return await menu(core)
    return keyboards.main_menu()


async def domain_error(
    event: ErrorEvent, bot: Bot, event_chat: Chat | None = None, core: Core | None = None
) -> None:
    error = event.exception
    assert isinstance(error, DomainError)
    markup: Markup
    if isinstance(error, REFERRAL_CODE_ERRORS):
        markup = keyboards.continue_without_code()
    else:
        markup = await _menu(core)
    await _tell(event, bot, event_chat, friendly_text(error), markup)


async def unexpected_error(event: ErrorEvent, bot: Bot, event_chat: Chat | None = None) -> None:
    log.error("update %s failed", event.update.update_id, exc_info=event.exception)
    await _tell(event, bot, event_chat, _("Something went wrong; please try again."), None)


async def _tell(
    event: ErrorEvent, bot: Bot, chat: Chat | None, text: str, markup: Markup | None
) -> None:
    """Answer the user whatever they sent; a failure to answer is logged, never raised."""
    try:
        if event.update.callback_query is not None:
            with suppress(AiogramError):  # it may have been answered before the failure
                await event.update.callback_query.answer()
        if chat is not None:
            await bot.send_message(chat.id, text, reply_markup=markup)
    except AiogramError as exc:  # Telegram refused, or answered with something unreadable
        log.warning("could not tell the user about an error: %r", exc)


# A chat's join, leave or join request that failed (the database away): handled again after
# these pauses. Applying one is idempotent by its update id, so a repeat is harmless; what is
# still failing after the last is logged with its update id.
CHAT_UPDATE_RETRIES = (1.0, 5.0, 30.0)
_retrying: set[asyncio.Task[None]] = set()


async def chat_update_failed(
    event: ErrorEvent, bot: Bot, dispatcher: Dispatcher, chat_update_attempt: int = 0
) -> None:
    """Never a message into the chat (a channel's members would read it): tried again."""
    update_id = event.update.update_id
    if chat_update_attempt >= len(CHAT_UPDATE_RETRIES):
        log.error("chat update %s failed for good", update_id, exc_info=event.exception)
        return
    pause = CHAT_UPDATE_RETRIES[chat_update_attempt]
    log.warning("chat update %s failed (%r); again in %ss", update_id, event.exception, pause)

    async def again() -> None:
        await asyncio.sleep(pause)
        await dispatcher.feed_update(bot, event.update, chat_update_attempt=chat_update_attempt + 1)

    task = asyncio.create_task(again())
    _retrying.add(task)
    task.add_done_callback(_retrying.discard)


def create_router() -> Router:
    router = Router(name="errors")
    router.error.register(chat_update_failed, lambda event: is_chat_update(event.update))
    router.error.register(domain_error, ExceptionTypeFilter(DomainError))
    router.error.register(unexpected_error)
    return router
