"""The program in chat: /stats (with a chart), /top, /rewards, and /review for operators."""

from __future__ import annotations

import asyncio

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import BufferedInputFile, CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot import chart, keyboards, render
from bot.handlers.common import edit_text
from bot.i18n import translations
from bot.keyboards import ReviewAction, ReviewOp, RewardPage
from bot.middlewares import NEEDS_ACCOUNT
from core.container import Core
from core.infra.errors import DomainError
from core.operators.service import Operator
from core.telegram.service import TelegramProfile
from core.users.models import User

LEADERBOARD_DAYS = 30
REWARDS_PAGE = 10


async def show_stats(message: Message, core: Core, profile: TelegramProfile, account: User) -> None:
    values = await core.stats.referrer_stats(user_id=account.id)
    counts = [day["referrals"] for day in values["last_30_days"]]
    picture = await asyncio.to_thread(chart.signups_png, counts)  # off the event loop
    await message.answer_photo(
        BufferedInputFile(picture, filename="signups.png"), caption=render.stats(values)
    )


async def show_top(message: Message, core: Core, profile: TelegramProfile, account: User) -> None:
    items = await core.stats.leaderboard(days=LEADERBOARD_DAYS, limit=10)
    mine = await core.stats.rank_of(user_id=account.id, days=LEADERBOARD_DAYS)
    await message.answer(render.leaderboard(items, mine))


async def _rewards(core: Core, account: User, page: int, cursor: str | None) -> tuple[str, object]:
    found = await core.rewards.page(user_id=account.id, limit=REWARDS_PAGE, cursor=cursor)
    names = {}
    if any(reward.campaign != "default" for reward in found.items):
        names = {campaign.key: campaign.name for campaign in await core.campaigns.all()}
    text = render.rewards_page(
        found.balance, found.pending, found.items, page=page, campaigns=names
    )
    return text, keyboards.reward_pages(page=page, next_cursor=found.next_cursor)


async def show_rewards(
    message: Message, core: Core, profile: TelegramProfile, account: User
) -> None:
    text, markup = await _rewards(core, account, 0, None)
    await message.answer(text, reply_markup=markup)  # type: ignore[arg-type]


async def turn_rewards_page(
    callback: CallbackQuery,
    callback_data: RewardPage,
    bot: Bot,
    core: Core,
    profile: TelegramProfile,
    account: User,
) -> None:
    await callback.answer()
    try:
        text, markup = await _rewards(
            core, account, callback_data.page, callback_data.cursor or None
        )
    except DomainError:  # a button whose cursor no longer reads: back to the first page
        text, markup = await _rewards(core, account, 0, None)
    if isinstance(callback.message, Message):
        await edit_text(callback.message, text, markup)  # type: ignore[arg-type]
    else:
        await bot.send_message(profile.telegram_id, text, reply_markup=markup)  # type: ignore[arg-type]


async def _next_review(
    core: Core, chat: Message | None, bot: Bot, chat_id: int, after: int | None
) -> None:
    item = await core.review.next_for_review(after=after)
    if item is None:
        text, markup = _("Nothing is waiting for review."), None
    else:
        text, markup = render.review_card(item), keyboards.review(item.id)
    if chat is not None:
        await edit_text(chat, text, markup)
    else:
        await bot.send_message(chat_id, text, reply_markup=markup)


async def review(message: Message, bot: Bot, core: Core, account: User | None) -> None:
    if account is None or not account.is_superuser:
        await message.answer(_("Only operators review referrals."))
        return
    await _next_review(core, None, bot, message.chat.id, None)


async def decide(
    callback: CallbackQuery,
    callback_data: ReviewAction,
    bot: Bot,
    core: Core,
    account: User | None,
) -> None:
    if account is None or not account.is_superuser:
        await callback.answer(_("Only operators review referrals."), show_alert=True)
        return
    referral_id = callback_data.referral_id
    if callback_data.op is ReviewOp.skip:
        await callback.answer()
    else:
        try:
            await core.review.decide(
                operator=Operator(user_id=account.id),
                referral_id=referral_id,
                approve=callback_data.op is ReviewOp.approve,
            )
        except DomainError:  # decided meanwhile (another operator, a second press)
            await callback.answer(_("This referral was already decided."))
        else:
            await callback.answer(
                _("Approved.") if callback_data.op is ReviewOp.approve else _("Rejected.")
            )
    message = callback.message if isinstance(callback.message, Message) else None
    chat_id = message.chat.id if message else account.telegram_id or 0
    after = referral_id if callback_data.op is ReviewOp.skip else None
    await _next_review(core, message, bot, chat_id, after)


def create_router() -> Router:
    router = Router(name="program")
    router.message.register(show_stats, Command("stats"), flags=NEEDS_ACCOUNT)
    router.message.register(
        show_stats, F.text.in_(translations(keyboards.MY_STATS)), flags=NEEDS_ACCOUNT
    )
    router.message.register(show_top, Command("top"), flags=NEEDS_ACCOUNT)
    router.message.register(show_rewards, Command("rewards"), flags=NEEDS_ACCOUNT)
    router.message.register(review, Command("review"))
    router.callback_query.register(turn_rewards_page, RewardPage.filter(), flags=NEEDS_ACCOUNT)
    router.callback_query.register(decide, ReviewAction.filter())
    return router
