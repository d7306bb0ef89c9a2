"""Groups and channels: the bot keeps accounts in private chats only, and says so."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from core.container import Core


def private_only(core: Core) -> str:
    text = _("I work in a private chat only: please write to me directly.")
    username = core.telegram.bot_username
    return f"{text}\nhttps://t.me/{username}" if username else text


async def command_in_a_group(message: Message, core: Core) -> None:
    # A member, an anonymous admin or a channel: no account is made or changed from here.
    await message.answer(private_only(core))


async def group_chatter(message: Message) -> None:
    """Group talk (when privacy mode is off) is not for the bot: no answer to each line."""


async def pressed_in_a_group(callback: CallbackQuery, core: Core) -> None:
    await callback.answer(private_only(core)[:200])


def create_router() -> Router:
    router = Router(name="chats")
    in_a_group = F.chat.type != ChatType.PRIVATE
    router.message.register(command_in_a_group, in_a_group, F.text.startswith("/"))
    router.message.register(group_chatter, in_a_group)
    router.callback_query.register(
        pressed_in_a_group, F.message.chat.type.in_({ChatType.GROUP, ChatType.SUPERGROUP})
    )
    return router
