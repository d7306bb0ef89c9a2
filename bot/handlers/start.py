"""/start, with or without a referral code in the deep link."""

from __future__ import annotations

from html import escape

from aiogram import Bot, F, Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot import render
from bot.accounts import ensure_account
from bot.handlers.common import drop_buttons, menu
from bot.keyboards import StartAction
from core.container import Core
from core.telegram.service import TelegramProfile
from core.users.models import User


async def start(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    core: Core,
    profile: TelegramProfile,
    account: User | None,
) -> None:
    await state.clear()
    code = command.args
    if code:
        await core.referrals.count_open(
            code, visitor=f"telegram:{profile.telegram_id}", opens=core.link_opens
        )
    if account is not None:
        if code and await core.telegram.is_own_code(user_id=account.id, code=code):
            text = _("This is your own referral code: share it with friends instead.")
        elif code:
            text = _(
                "You are already registered. A referrer is set only when an account is created."
            )
        else:
            text = _("Welcome back, {name}!").format(name=escape(render.name_of(account)))
        await message.answer(text, reply_markup=await menu(core))
        return
    # A bad code raises; the error router explains it and offers to continue without one.
    user, claimed = await core.accounts.sign_up_telegram(
        telegram_id=profile.telegram_id,
        full_name=profile.full_name,
        username=profile.username,
        language_code=profile.language_code,
        referral_code=code,
    )
    if claimed is not None:
        name = escape(render.name_of(user))
        if claimed.owner.full_name:
            text = _("Welcome, {name}! You joined via {referrer}'s invitation.").format(
                name=name, referrer=escape(claimed.owner.full_name)
            )
        else:  # a referrer who gave no name is "a friend", never a piece of their email
            text = _("Welcome, {name}! You joined via a friend's invitation.").format(name=name)
    else:
        text = _("Welcome, {name}! Your account is ready.").format(
            name=escape(render.name_of(user))
        )
    await message.answer(
        text + "\n\n" + _('Invite friends with a referral code of your own: press "Create".'),
        reply_markup=await menu(core),
    )


async def continue_without_code(
    callback: CallbackQuery,
    bot: Bot,
    core: Core,
    profile: TelegramProfile,
    account: User | None,
) -> None:
    await callback.answer()
    await drop_buttons(callback)
    if account is None:
        account = await ensure_account(core, profile, account)
        text = _("Welcome, {name}! Your account is ready.")
    else:  # pressed twice, or already signed up some other way
        text = _("Welcome back, {name}!")
    await bot.send_message(
        profile.telegram_id,
        text.format(name=escape(render.name_of(account))),
        reply_markup=await menu(core),
    )


def create_router() -> Router:
    router = Router(name="start")
    router.message.register(start, CommandStart())
    router.callback_query.register(continue_without_code, StartAction.filter(F.op == "plain"))
    return router
