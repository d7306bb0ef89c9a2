"""Growth inside Telegram (BOT.md v1.2): `/invite` and its menu button, sharing from any chat
(inline mode), and the chat's own updates: joins, leaves and join requests."""

from __future__ import annotations

import logging
from html import escape

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandStart
from aiogram.types import (
    BufferedInputFile,
    ChatJoinRequest,
    ChatMemberUpdated,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQuery,
    InlineQueryResultArticle,
    InlineQueryResultsButton,
    InputTextMessageContent,
    Message,
    Update,
)
from aiogram.types.inline_query_result_union import InlineQueryResultUnion
from aiogram.utils.i18n import gettext as _

from bot import keyboards, render
from bot.accounts import ensure_account
from bot.chat_api import BotChatApi, is_member
from bot.handlers.common import menu
from bot.middlewares import NEEDS_ACCOUNT
from core.container import Core
from core.invites.chat import ChatNotReady
from core.invites.service import Invitation
from core.telegram.service import LINK_PREFIX, TelegramProfile
from core.users.models import User

log = logging.getLogger(__name__)

# The /start payload of "start the bot to get your invitation" (inline mode): a reserved
# prefix no code may take, and no linking token is this short.
INVITE_START = LINK_PREFIX + "invite"
INLINE_CACHE_SECONDS = 10


# -- /invite --------------------------------------------------------------------------------


async def invite(message: Message, bot: Bot, core: Core, account: User) -> None:
    campaigns = await core.invites.running_chat_campaigns()
    if not campaigns:
        await message.answer(_("There is no chat to invite friends to right now."))
        return
    api = BotChatApi(bot)
    for campaign in campaigns[:5]:
        try:
            invitation = await core.invites.invitation(user=account, campaign=campaign, api=api)
        except ChatNotReady:  # this campaign's chat: the others may be ready (an outage of
            # Telegram itself is the error handler's to say)
            await message.answer(
                _("The campaign “{name}” is not ready yet; please try again later.").format(
                    name=escape(campaign.name)
                )
            )
            continue
        await _send_invitation(bot, message.chat.id, invitation)


async def _send_invitation(bot: Bot, chat_id: int, invitation: Invitation) -> None:
    telegram = invitation.campaign.rules.telegram
    days = telegram.qualify_after_days if telegram else 0
    chat = escape(invitation.chat_title or invitation.campaign.name)
    lines = [
        _("Your invitation to {chat}:").format(chat=chat),
        escape(invitation.link),
        "",
        _("Friends who join by this link count as your referrals.")
        if days == 0
        else render.stay_rule(days),
    ]
    picture = BufferedInputFile(render.qr_png(invitation.link), filename="invitation.png")
    await bot.send_photo(
        chat_id,
        picture,
        caption="\n".join(lines),
        reply_markup=keyboards.invitation(invitation.link),
    )


async def start_for_invite(
    message: Message, bot: Bot, core: Core, profile: TelegramProfile, account: User | None
) -> None:
    """`/start link_invite`, from inline mode's "start the bot": an account, then /invite."""
    account = await ensure_account(core, profile, account)
    campaigns = await core.invites.running_chat_campaigns()
    if not campaigns:
        await message.answer(
            _('Create a referral code to share: press "Create".'),
            reply_markup=await menu(core),
        )
        return
    await invite(message, bot, core, account)


# -- inline mode ----------------------------------------------------------------------------


async def inline_invitation(query: InlineQuery, core: Core, account: User | None) -> None:
    """`@bot` in any chat: the user's invitations as messages with a button; someone without
    an account or an invitation is offered to start the bot."""
    results: list[InlineQueryResultUnion] = []
    if account is not None:
        links, code = await core.invites.offers(user=account)
        for found in links:
            chat = found.chat_title or found.campaign.name
            results.append(
                _article(
                    f"chat-{found.campaign.id}",
                    title=_("Invite to {chat}").format(chat=chat),
                    text=_("Join {chat} with my invitation:").format(chat=escape(chat)),
                    button=_("Join {chat}").format(chat=chat),
                    url=found.link,
                )
            )
        deep_link = core.telegram.deep_link(code.code) if code is not None else None
        if code is not None and deep_link is not None:
            results.append(
                _article(
                    "code",
                    title=_("Share my referral code"),
                    text=_("Join with my referral code {code}").format(code=escape(code.code)),
                    button=_("Open the bot"),
                    url=deep_link,
                )
            )
    button = None
    if not results:
        button = InlineQueryResultsButton(
            text=_("Get your invitation in the bot"), start_parameter=INVITE_START
        )
    await query.answer(results, cache_time=INLINE_CACHE_SECONDS, is_personal=True, button=button)


def _article(
    result_id: str, *, title: str, text: str, button: str, url: str
) -> InlineQueryResultArticle:
    return InlineQueryResultArticle(
        id=result_id,
        title=title[:64],
        description=url,
        input_message_content=InputTextMessageContent(message_text=text),
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text=button[:64], url=url)]]
        ),
    )


# -- the chat's updates ---------------------------------------------------------------------


def _profile(user: object) -> TelegramProfile:
    return TelegramProfile(
        telegram_id=user.id,  # type: ignore[attr-defined]
        full_name=user.full_name,  # type: ignore[attr-defined]
        username=user.username,  # type: ignore[attr-defined]
        language_code=user.language_code,  # type: ignore[attr-defined]
    )


async def member_changed(event: ChatMemberUpdated, event_update: Update, core: Core) -> None:
    """Someone joined or left a chat. Only the chats campaigns name are looked at; the rest of
    the work (once per update and person, the account, the referral, the wait) is the core's."""
    person = event.new_chat_member.user
    if person.is_bot or event.chat.id not in await core.invites.named_chat_ids():
        return
    link = event.invite_link.invite_link if event.invite_link is not None else None
    await core.invites.member_changed(
        update_id=event_update.update_id,
        chat_id=event.chat.id,
        person=_profile(person),
        was_member=is_member(event.old_chat_member),
        is_member=is_member(event.new_chat_member),
        link=link,
    )


async def join_requested(event: ChatJoinRequest, event_update: Update, core: Core) -> None:
    """A join request by a participant's link: approved at once (a job) unless its referral
    is held for review; requests by other links are left to the chat's administrators."""
    if event.from_user.is_bot or event.chat.id not in await core.invites.named_chat_ids():
        return
    await core.invites.join_requested(
        update_id=event_update.update_id,
        chat_id=event.chat.id,
        person=_profile(event.from_user),
        link=event.invite_link.invite_link if event.invite_link is not None else None,
    )


def create_router() -> Router:
    router = Router(name="invites")
    private = F.chat.type == ChatType.PRIVATE
    router.message.register(
        start_for_invite, private, CommandStart(deep_link=True, magic=F.args == INVITE_START)
    )
    router.message.register(invite, private, Command("invite"), flags=NEEDS_ACCOUNT)
    router.message.register(
        invite, private, F.text.func(keyboards.is_invite_label), flags=NEEDS_ACCOUNT
    )
    router.inline_query.register(inline_invitation)
    router.chat_member.register(member_changed)
    router.chat_join_request.register(join_requested)
    return router
