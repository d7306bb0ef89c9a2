"""Keyboards and the callback data behind inline buttons."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from functools import lru_cache
from urllib.parse import urlencode

from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.i18n import N_, translations

EXPIRY_CHOICES = (1, 7, 30, 90)

MY_CODE = N_("My code")
CREATE = N_("Create")
REFERRALS = N_("Referrals")
MY_STATS = N_("My stats")
HELP = N_("Help")
INVITE_TO = N_("Invite to {chat}")


@lru_cache
def menu_labels() -> frozenset[str]:
    """Every language's menu labels: a press arrives as plain text, maybe from an old keyboard."""
    labels = (MY_CODE, CREATE, REFERRALS, MY_STATS, HELP)
    return frozenset().union(*(translations(label) for label in labels))


class CodeOp(StrEnum):
    create = "create"
    delete = "delete"
    confirm = "confirm"
    keep = "keep"


class CodeAction(CallbackData, prefix="code"):
    op: CodeOp
    # The code a button was made for: a button outliving its code is recognised as stale.
    code: str = ""


class ExpiryChoice(CallbackData, prefix="expiry"):
    days: int


class ReferralPage(CallbackData, prefix="refs"):
    offset: int


class RewardPage(CallbackData, prefix="rwd"):
    page: int
    cursor: str = ""  # the cursor of that page ("" for the first)


class ReviewOp(StrEnum):
    approve = "approve"
    reject = "reject"
    skip = "skip"


class ReviewAction(CallbackData, prefix="review"):
    op: ReviewOp
    referral_id: int


class StartAction(CallbackData, prefix="start"):
    op: str  # "plain": join without a referral code


def main_menu(invite_to: str | None = None) -> ReplyKeyboardMarkup:
    """The menu; with "Invite to <chat>" on top while a campaign grows that chat."""
    rows = [
        [KeyboardButton(text=_(MY_CODE)), KeyboardButton(text=_(CREATE))],
        [KeyboardButton(text=_(REFERRALS)), KeyboardButton(text=_(MY_STATS))],
        [KeyboardButton(text=_(HELP))],
    ]
    if invite_to:
        rows.insert(0, [KeyboardButton(text=_(INVITE_TO).format(chat=invite_to[:40]))])
    return ReplyKeyboardMarkup(keyboard=rows, resize_keyboard=True, is_persistent=True)


@lru_cache
def _invite_prefixes() -> tuple[str, ...]:
    return tuple(text.split("{chat}")[0] for text in translations(INVITE_TO))


def is_invite_label(text: str) -> bool:
    """Whether a text is the "Invite to <chat>" button, in any language, for any chat."""
    return bool(text) and text.startswith(_invite_prefixes())


def invitation(link: str) -> InlineKeyboardMarkup:
    """Share (the inline query, so sharing needs no copying) and the link itself."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text=_("Share"), switch_inline_query=""),
                InlineKeyboardButton(text=_("Open the chat"), url=link),
            ]
        ]
    )


def continue_without_code() -> InlineKeyboardMarkup:
    return _inline([(_("Continue without a code"), StartAction(op="plain"))])


def create_code() -> InlineKeyboardMarkup:
    return _inline([(_("Create a code"), CodeAction(op=CodeOp.create))])


def expiry_choices() -> InlineKeyboardMarkup:
    buttons = [
        InlineKeyboardButton(
            text=ngettext("{days} day", "{days} days", days).format(days=days),
            callback_data=ExpiryChoice(days=days).pack(),
        )
        for days in EXPIRY_CHOICES
    ]
    return InlineKeyboardMarkup(inline_keyboard=[buttons])


def code_card(code: str, link: str | None) -> InlineKeyboardMarkup:
    row = []
    if link:
        share = "https://t.me/share/url?" + urlencode(
            {"url": link, "text": _("Join with my referral code {code}").format(code=code)}
        )
        row.append(InlineKeyboardButton(text=_("Share"), url=share))
    row.append(
        InlineKeyboardButton(
            text=_("Delete"), callback_data=CodeAction(op=CodeOp.delete, code=code).pack()
        )
    )
    return InlineKeyboardMarkup(inline_keyboard=[row])


def confirm_delete(code: str) -> InlineKeyboardMarkup:
    return _inline(
        [
            (_("Yes, delete it"), CodeAction(op=CodeOp.confirm, code=code)),
            (_("No, keep it"), CodeAction(op=CodeOp.keep, code=code)),
        ]
    )


def referral_pages(*, offset: int, page_size: int, total: int) -> InlineKeyboardMarkup | None:
    row = []
    if offset > 0:
        row.append((_("« Prev"), ReferralPage(offset=max(0, offset - page_size))))
    if offset + page_size < total:
        row.append((_("Next »"), ReferralPage(offset=offset + page_size)))
    return _inline(row) if row else None


def reward_pages(*, page: int, next_cursor: str | None) -> InlineKeyboardMarkup | None:
    """Newer first: Prev goes back to page 0 (cursors only lead forward), Next follows."""
    row = []
    if page > 0:
        row.append((_("« Prev"), RewardPage(page=0)))
    if next_cursor:
        row.append((_("Next »"), RewardPage(page=page + 1, cursor=next_cursor)))
    return _inline(row) if row else None


def review(referral_id: int) -> InlineKeyboardMarkup:
    return _inline(
        [
            (_("Approve"), ReviewAction(op=ReviewOp.approve, referral_id=referral_id)),
            (_("Reject"), ReviewAction(op=ReviewOp.reject, referral_id=referral_id)),
            (_("Skip"), ReviewAction(op=ReviewOp.skip, referral_id=referral_id)),
        ]
    )


def _inline(row: Sequence[tuple[str, CallbackData]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=text, callback_data=data.pack()) for text, data in row]
        ]
    )
