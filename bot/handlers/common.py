"""Small pieces several handlers share."""

from __future__ import annotations

from contextlib import suppress

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardMarkup,
)
from aiogram.utils.i18n import gettext as _

from bot import keyboards, render
from core.container import Core
from core.referrals.models import ReferralCode


async def menu(core: Core) -> ReplyKeyboardMarkup:
    """The main menu, with "Invite to <chat>" while a campaign grows a chat (a reply keyboard
    stays until the next one replaces it: every menu sent names it)."""
    return keyboards.main_menu(await core.invites.menu_title())


async def send_code_card(bot: Bot, chat_id: int, core: Core, code: ReferralCode) -> None:
    """The code, its expiry and uses, the deep link and its QR picture, with Share and Delete."""
    link = core.telegram.deep_link(code.code)
    caption = render.code_card(code, link)
    markup = keyboards.code_card(code.code, link)
    if link is None:
        await bot.send_message(chat_id, caption, reply_markup=markup)
        return
    picture = BufferedInputFile(render.qr_png(link), filename=f"{code.code}.png")
    await bot.send_photo(chat_id, picture, caption=caption, reply_markup=markup)


async def edit_text(
    message: Message, text: str, markup: InlineKeyboardMarkup | None = None
) -> None:
    """Edit a bot message; an identical repeat (a double press) is not an error."""
    try:
        await message.edit_text(text, reply_markup=markup)
    except TelegramBadRequest as exc:
        if "message is not modified" not in exc.message:
            raise


async def drop_buttons(callback: CallbackQuery) -> None:
    """Take the buttons off the message a callback came from, when it is still there."""
    if isinstance(callback.message, Message):
        with suppress(TelegramBadRequest):
            await callback.message.edit_reply_markup(reply_markup=None)


async def answer_stale(callback: CallbackQuery) -> None:
    await callback.answer(_("This button is out of date."))
