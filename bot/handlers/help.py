"""/help, /cancel, and the answer to anything no other handler took."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot import keyboards
from bot.handlers.common import answer_stale, menu
from bot.i18n import translations
from core.container import Core


def help_text() -> str:
    return "\n".join(
        [
            _("I keep your referral code and show who joined with it."),
            "",
            _("/code — your code, its link and QR code"),
            _("/newcode — create a code (/newcode 30 makes one for 30 days)"),
            _("/referrals — people who joined with your code"),
            _("/stats — your referrals, rewards and link opens"),
            _("/top — the top referrers of the last 30 days"),
            _("/rewards — your reward balance and rewards"),
            _("/invite — your invite link to a campaign's chat"),
            _("/cancel — stop the current dialog"),
            _("/help — this message"),
        ]
    )


async def show_help(message: Message, core: Core) -> None:
    await message.answer(help_text(), reply_markup=await menu(core))


async def cancel(message: Message, state: FSMContext, core: Core) -> None:
    if await state.get_state() is None:
        text = _("There is nothing to cancel.")
    else:
        await state.clear()
        text = _("Cancelled.")
    await message.answer(text, reply_markup=await menu(core))


async def unknown_command(message: Message) -> None:
    await message.answer(_("I do not know that command.") + "\n\n" + help_text())


async def anything_else(message: Message, core: Core) -> None:
    await message.answer(help_text(), reply_markup=await menu(core))


async def unknown_button(callback: CallbackQuery) -> None:
    await answer_stale(callback)


def create_router() -> Router:
    router = Router(name="help")
    router.message.register(show_help, Command("help"))
    router.message.register(show_help, F.text.in_(translations(keyboards.HELP)))
    router.message.register(cancel, Command("cancel"))
    router.message.register(unknown_command, F.text.startswith("/"))
    router.message.register(anything_else)
    router.callback_query.register(unknown_button)
    return router
