"""/referrals: the total and a page of people who joined, with Prev/Next."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot import keyboards, render
from bot.handlers.common import edit_text
from bot.i18n import translations
from bot.keyboards import ReferralPage
from bot.middlewares import NEEDS_ACCOUNT
from core.container import Core
from core.telegram.service import TelegramProfile
from core.users.models import User

PAGE_SIZE = 10


async def _page(core: Core, account: User, offset: int) -> tuple[str, InlineKeyboardMarkup | None]:
    offset = max(0, offset)
    page = await core.referrals.referrals(referrer_id=account.id, limit=PAGE_SIZE, offset=offset)
    if offset and offset >= page.total:  # an old button after referrals went away: last page
        offset = max(0, (page.total - 1) // PAGE_SIZE * PAGE_SIZE)
        page = await core.referrals.referrals(
            referrer_id=account.id, limit=PAGE_SIZE, offset=offset
        )
    text = render.referral_page(page, offset=offset, page_size=PAGE_SIZE)
    markup = keyboards.referral_pages(offset=offset, page_size=PAGE_SIZE, total=page.total)
    return text, markup


async def list_referrals(
    message: Message, core: Core, profile: TelegramProfile, account: User
) -> None:
    text, markup = await _page(core, account, 0)
    await message.answer(text, reply_markup=markup)


async def turn_page(
    callback: CallbackQuery,
    callback_data: ReferralPage,
    bot: Bot,
    core: Core,
    profile: TelegramProfile,
    account: User,
) -> None:
    await callback.answer()
    text, markup = await _page(core, account, callback_data.offset)
    if isinstance(callback.message, Message):
        await edit_text(callback.message, text, markup)
    else:
        await bot.send_message(profile.telegram_id, text, reply_markup=markup)


def create_router() -> Router:
    router = Router(name="referrals")
    router.message.register(list_referrals, Command("referrals"), flags=NEEDS_ACCOUNT)
    router.message.register(
        list_referrals, F.text.in_(translations(keyboards.REFERRALS)), flags=NEEDS_ACCOUNT
    )
    router.callback_query.register(turn_page, ReferralPage.filter(), flags=NEEDS_ACCOUNT)
    return router
