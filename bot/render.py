"""What the bot shows: the code card, a page of referrals, a notification; and the QR picture."""

from __future__ import annotations

import datetime as dt
import io
from html import escape
from typing import Protocol

import segno
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _
from babel.dates import format_date, format_datetime

from core.referrals.models import ReferralCode
from core.referrals.service import ReferralPage
from core.telegram.service import Delivery

# One style in every language: "1 December 2026", "1 декабря 2026".
DATE_PATTERN = "d MMMM y"


def current_locale() -> str:
    i18n = I18n.get_current()
    return i18n.current_locale if i18n is not None else "en"


def when(moment: dt.datetime, *, locale: str | None = None) -> str:
    """A moment in the user's language, in UTC (the one zone every user shares)."""
    return format_datetime(
        moment, f"{DATE_PATTERN}, HH:mm 'UTC'", tzinfo=dt.UTC, locale=locale or current_locale()
    )


class Named(Protocol):
    @property
    def full_name(self) -> str | None: ...


def name_of(user: Named) -> str:
    """How a person is shown: the name they gave (Telegram's first and last name for chat
    accounts), else "a friend"; never a piece of their email."""
    return user.full_name or _("a friend")


def code_card(code: ReferralCode, link: str | None) -> str:
    lines = [
        _("Your referral code: <code>{code}</code>").format(code=escape(code.code)),
        _("Expires: {moment}").format(moment=when(code.expires_at)),
        _("Uses: {uses} / {max_uses}").format(
            uses=code.uses, max_uses=code.max_uses if code.max_uses is not None else "∞"
        ),
    ]
    if link:
        lines.append(_("Link: {link}").format(link=escape(link)))
    return "\n".join(lines)


def referral_page(page: ReferralPage, *, offset: int, page_size: int) -> str:
    if page.total == 0:
        return _("No one has joined with your code yet.")
    lines = [
        ngettext("You have {total} referral.", "You have {total} referrals.", page.total).format(
            total=page.total
        ),
        "",
    ]
    locale = current_locale()
    for number, user in enumerate(page.items, start=offset + 1):
        joined = format_date(user.created_at, DATE_PATTERN, locale=locale)
        lines.append(f"{number}. {escape(name_of(user))} — {joined}")
    pages = (page.total + page_size - 1) // page_size
    lines += ["", _("Page {page} of {pages}").format(page=offset // page_size + 1, pages=pages)]
    return "\n".join(lines)


def notification(delivery: Delivery, *, i18n: I18n, locale: str) -> str | None:
    """The chat message for a queued notification, or None for one this bot does not know."""
    if delivery.kind != "new_referral":
        return None
    count = int(delivery.payload.get("referral_count") or 1)
    name = escape(
        str(delivery.payload.get("referral_name") or i18n.gettext("a friend", locale=locale))
    )
    text = i18n.gettext(
        "{name} joined with your code; you now have {count} referral.",
        "{name} joined with your code; you now have {count} referrals.",
        count,
        locale=locale,
    )
    return text.format(name=name, count=count)


def qr_png(link: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(link, error="m").save(buffer, kind="png", scale=8, border=2)
    return buffer.getvalue()
