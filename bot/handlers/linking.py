"""`/start link_<token>`: attach this chat to an account made through the API."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from bot import render
from bot.handlers.common import menu
from core.container import Core
from core.telegram.service import LINK_PREFIX, TelegramProfile


async def link_account(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    core: Core,
    profile: TelegramProfile,
) -> None:
    await state.clear()
    token = (command.args or "").removeprefix(LINK_PREFIX)
    user = await core.telegram.redeem_link(token=token, profile=profile)
    await message.answer(
        _(
            "Done: this chat is linked to your account {account}. "
            "Your code and referrals are now the same here and wherever you sign in."
        ).format(account=escape(user.email or render.name_of(user))),
        reply_markup=await menu(core),
    )


def create_router() -> Router:
    router = Router(name="linking")
    router.message.register(
        link_account, CommandStart(deep_link=True, magic=F.args.startswith(LINK_PREFIX))
    )
    return router
