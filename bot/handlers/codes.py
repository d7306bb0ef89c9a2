"""The user's referral code: show it, create it (with an expiry dialog), delete it."""

from __future__ import annotations

import datetime as dt
from html import escape

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot import keyboards
from bot.expiry import BadExpiry, ExpiryProblem, example_date, expiry_after_days, parse_expiry
from bot.handlers.common import (
    answer_stale,
    drop_buttons,
    edit_text,
    send_code_card,
)
from bot.i18n import translations
from bot.keyboards import CodeAction, CodeOp, ExpiryChoice, menu_labels
from bot.middlewares import NEEDS_ACCOUNT
from core.container import Core
from core.infra import clock
from core.referrals.models import ReferralCode
from core.telegram.service import TelegramProfile
from core.users.models import User


class NewCode(StatesGroup):
    expiry = State()


def expiry_hint() -> str:
    example = example_date(clock.utcnow())
    return _(
        "Send a number of days from 1 to 365, or a date such as {iso} or {dotted}. /cancel stops."
    ).format(iso=example.strftime("%Y-%m-%d"), dotted=example.strftime("%d.%m.%Y"))


def explain(problem: ExpiryProblem) -> str:
    reasons = {
        ExpiryProblem.not_understood: _("I did not understand that."),
        ExpiryProblem.too_short: _("A code must work for at least 1 day."),
        ExpiryProblem.too_long: _("A code can work for at most 365 days."),
        ExpiryProblem.past_date: _("That date has already passed."),
    }
    return reasons[problem] + " " + expiry_hint()


def is_dialog_input(message: Message) -> bool:
    """Anything but a command or a menu button answers the expiry question."""
    text = message.text or ""
    return (
        not text.startswith("/")
        and text not in menu_labels()
        and not keyboards.is_invite_label(text)
    )


# -- show -------------------------------------------------------------------------------


async def show_code(
    message: Message, bot: Bot, core: Core, profile: TelegramProfile, account: User
) -> None:
    code = await core.referrals.active_code(owner_id=account.id)
    if code is None:
        await message.answer(
            _("You have no active referral code."), reply_markup=keyboards.create_code()
        )
        return
    await send_code_card(bot, message.chat.id, core, code)


# -- create -----------------------------------------------------------------------------


async def new_code_command(
    message: Message,
    command: CommandObject,
    bot: Bot,
    state: FSMContext,
    core: Core,
    profile: TelegramProfile,
    account: User,
) -> None:
    await begin_new_code(bot, message.chat.id, state, core, account, typed=command.args)


async def new_code_button(
    message: Message,
    bot: Bot,
    state: FSMContext,
    core: Core,
    profile: TelegramProfile,
    account: User,
) -> None:
    await begin_new_code(bot, message.chat.id, state, core, account, typed=None)


async def new_code_inline(
    callback: CallbackQuery,
    bot: Bot,
    state: FSMContext,
    core: Core,
    profile: TelegramProfile,
    account: User,
) -> None:
    await callback.answer()
    await begin_new_code(bot, profile.telegram_id, state, core, account, typed=None)


async def begin_new_code(
    bot: Bot,
    chat_id: int,
    state: FSMContext,
    core: Core,
    account: User,
    *,
    typed: str | None,
) -> None:
    active = await core.referrals.active_code(owner_id=account.id)
    if active is not None:
        await state.clear()
        await bot.send_message(
            chat_id, _("You already have an active code; delete it before creating a new one.")
        )
        await send_code_card(bot, chat_id, core, active)
        return
    if typed is None:
        await state.set_state(NewCode.expiry)
        await bot.send_message(
            chat_id,
            _("For how long should the code work?") + " " + expiry_hint(),
            reply_markup=keyboards.expiry_choices(),
        )
        return
    try:
        expires_at = parse_expiry(typed, now=clock.utcnow())
    except BadExpiry as exc:
        await state.set_state(NewCode.expiry)  # the next message may be the corrected value
        await bot.send_message(chat_id, explain(exc.problem))
        return
    await create_and_show(bot, chat_id, state, core, account, expires_at)


async def typed_expiry(
    message: Message, bot: Bot, state: FSMContext, core: Core, account: User | None
) -> None:
    if account is None:  # the account went away mid-dialog; start over
        await state.clear()
        await message.answer(_("Please start again with /start."))
        return
    try:
        expires_at = parse_expiry(message.text or "", now=clock.utcnow())
    except BadExpiry as exc:
        await message.answer(explain(exc.problem))
        return
    await create_and_show(bot, message.chat.id, state, core, account, expires_at)


async def chosen_expiry(
    callback: CallbackQuery,
    callback_data: ExpiryChoice,
    bot: Bot,
    state: FSMContext,
    core: Core,
    profile: TelegramProfile,
    account: User,
) -> None:
    try:
        expires_at = expiry_after_days(callback_data.days, now=clock.utcnow())
    except BadExpiry as exc:
        await callback.answer(explain(exc.problem)[:200], show_alert=True)
        return
    await callback.answer()
    if isinstance(callback.message, Message):
        await edit_text(callback.message, _("For how long should the code work?"))
    await create_and_show(bot, profile.telegram_id, state, core, account, expires_at)


async def create_and_show(
    bot: Bot, chat_id: int, state: FSMContext, core: Core, account: User, expires_at: dt.datetime
) -> None:
    await state.clear()
    code = await core.referrals.create_code(owner=account, expires_at=expires_at)
    await bot.send_message(chat_id, _("Your new code is ready."))
    await send_code_card(bot, chat_id, core, code)


# -- delete -----------------------------------------------------------------------------


async def _live_code(core: Core, account: User | None, code: str) -> ReferralCode | None:
    """The user's active code when it is the one the button was made for."""
    if account is None:
        return None
    active = await core.referrals.active_code(owner_id=account.id)
    return active if active is not None and active.code == code else None


async def ask_delete(
    callback: CallbackQuery,
    callback_data: CodeAction,
    bot: Bot,
    core: Core,
    account: User | None,
) -> None:
    code = await _live_code(core, account, callback_data.code)
    if code is None:
        await answer_stale(callback)
        return
    await callback.answer()
    await bot.send_message(
        callback.from_user.id,
        _("Delete the code <code>{code}</code>? It stops working at once.").format(
            code=escape(code.code)
        ),
        reply_markup=keyboards.confirm_delete(code.code),
    )


async def confirm_delete(
    callback: CallbackQuery,
    callback_data: CodeAction,
    bot: Bot,
    core: Core,
    account: User | None,
) -> None:
    code = await _live_code(core, account, callback_data.code)
    if code is None or account is None:
        await answer_stale(callback)
        await drop_buttons(callback)
        return
    deleted = await core.referrals.delete_active_code(owner=account)
    await callback.answer(_("Deleted."))
    await _settle(
        callback,
        bot,
        _("The code <code>{code}</code> is deleted; it no longer works.").format(
            code=escape(deleted.code)
        ),
    )


async def keep_code(
    callback: CallbackQuery, callback_data: CodeAction, bot: Bot, core: Core, account: User | None
) -> None:
    await callback.answer()
    if await _live_code(core, account, callback_data.code) is None:
        # Deleted from another confirmation (or it ran out meanwhile): say what is true.
        text = _("The code <code>{code}</code> no longer works, so there is nothing to keep.")
        await _settle(callback, bot, text.format(code=escape(callback_data.code)))
        return
    await _settle(callback, bot, _("OK, the code stays."))


async def _settle(callback: CallbackQuery, bot: Bot, text: str) -> None:
    """Replace a question with its outcome (buttons gone), or say it anew."""
    if isinstance(callback.message, Message) and callback.message.text is not None:
        await edit_text(callback.message, text)
    else:
        await bot.send_message(callback.from_user.id, text)


def create_router() -> Router:
    router = Router(name="codes")
    router.message.register(show_code, Command("code"), flags=NEEDS_ACCOUNT)
    router.message.register(
        show_code, F.text.in_(translations(keyboards.MY_CODE)), flags=NEEDS_ACCOUNT
    )
    router.message.register(new_code_command, Command("newcode"), flags=NEEDS_ACCOUNT)
    router.message.register(
        new_code_button, F.text.in_(translations(keyboards.CREATE)), flags=NEEDS_ACCOUNT
    )
    router.callback_query.register(
        new_code_inline, CodeAction.filter(F.op == CodeOp.create), flags=NEEDS_ACCOUNT
    )
    router.message.register(typed_expiry, NewCode.expiry, is_dialog_input)
    router.callback_query.register(
        chosen_expiry, NewCode.expiry, ExpiryChoice.filter(), flags=NEEDS_ACCOUNT
    )
    router.callback_query.register(ask_delete, CodeAction.filter(F.op == CodeOp.delete))
    router.callback_query.register(confirm_delete, CodeAction.filter(F.op == CodeOp.confirm))
    router.callback_query.register(keep_code, CodeAction.filter(F.op == CodeOp.keep))
    return router
