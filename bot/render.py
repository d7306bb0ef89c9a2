"""What the bot shows: the code card, a page of referrals, a notification; and the QR picture."""

from __future__ import annotations

import datetime as dt
import io
from html import escape
from typing import Any, Protocol

import segno
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _
from babel.dates import format_date, format_datetime

from bot.i18n import N_, translate
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
        status = {"pending_review": _("under review"), "rejected": _("not approved")}.get(
            user.status
        )
        suffix = f" ({status})" if status else ""
        lines.append(f"{number}. {escape(name_of(user))} — {joined}{suffix}")
    pages = (page.total + page_size - 1) // page_size
    lines += ["", _("Page {page} of {pages}").format(page=offset // page_size + 1, pages=pages)]
    return "\n".join(lines)


def notification(delivery: Delivery, *, i18n: I18n, locale: str) -> str | None:
    """The chat message for a queued notification, or None for one this bot does not know."""
    payload = delivery.payload
    name = escape(str(payload.get("referral_name") or translate("a friend", locale=locale)))
    points = int(payload.get("points") or 0)
    if delivery.kind == "new_referral":
        if payload.get("held"):
            text = translate(
                "{name} joined with your code; the referral is under review.", locale=locale
            )
            return text.format(name=name)
        count = int(payload.get("referral_count") or 1)
        text = i18n.gettext(
            "{name} joined with your code; you now have {count} referral.",
            "{name} joined with your code; you now have {count} referrals.",
            count,
            locale=locale,
        )
        return text.format(name=name, count=count)
    if delivery.kind == "referral_qualified":
        if payload.get("held"):
            text = translate(
                "{name}'s referral qualified; its reward waits for the review.", locale=locale
            )
            return text.format(name=name)
        if payload.get("pending"):
            text = i18n.gettext(
                "{name}'s referral qualified: +{points} point, in hold for now.",
                "{name}'s referral qualified: +{points} points, in hold for now.",
                points,
                locale=locale,
            )
            return text.format(name=name, points=points)
        text = i18n.gettext(
            "{name}'s referral qualified: +{points} point.",
            "{name}'s referral qualified: +{points} points.",
            points,
            locale=locale,
        )
        return text.format(name=name, points=points)
    if delivery.kind == "reward_available":
        text = i18n.gettext(
            "Your hold is over: {points} point is now yours to spend.",
            "Your hold is over: {points} points are now yours to spend.",
            points,
            locale=locale,
        )
        return text.format(points=points)
    if delivery.kind == "referral_reviewed":
        if not payload.get("approved"):
            text = translate("{name}'s referral was not approved.", locale=locale)
            return text.format(name=name)
        if points:
            text = i18n.gettext(
                "{name}'s referral was approved: +{points} point.",
                "{name}'s referral was approved: +{points} points.",
                points,
                locale=locale,
            )
            return text.format(name=name, points=points)
        return translate("{name}'s referral was approved.", locale=locale).format(name=name)
    if delivery.kind in ("webhook_failing", "webhook_disabled"):
        values = {
            "url": escape(str(payload.get("url") or "")),
            "failures": int(payload.get("failures") or 0),
            "limit": int(payload.get("limit") or 0),
        }
        if delivery.kind == "webhook_failing":
            text = translate(
                "Webhook {url}: {failures} deliveries in a row have failed. At {limit} it is "
                "switched off.",
                locale=locale,
            )
        else:
            text = translate(
                "Webhook {url} is switched off after {limit} failed deliveries in a row. "
                "Fix the receiver, then enable it again in the console.",
                locale=locale,
            )
        return text.format(**values)
    return None


def stats(values: dict[str, object]) -> str:
    return "\n".join(
        [
            _("<b>Your referrals</b>"),
            _("Approved: {approved}").format(approved=values["approved"]),
            _("Under review: {pending}").format(pending=values["pending_review"]),
            _("Qualified: {qualified}").format(qualified=values["qualified"]),
            ngettext(
                "Reward balance: {balance} point",
                "Reward balance: {balance} points",
                int(values["rewards_balance"]),  # type: ignore[call-overload]
            ).format(balance=values["rewards_balance"]),
            *_in_hold(int(values.get("rewards_pending") or 0)),  # type: ignore[call-overload]
            _("Link opens: {opens}").format(opens=values["link_opens"]),
            _("Sign-ups over the last 30 days are in the picture."),
        ]
    )


def leaderboard(items: list[dict[str, Any]], mine: tuple[int, int] | None) -> str:
    lines = [_("<b>Top referrers, last 30 days</b>")]
    if not items:
        lines.append(_("No approved referrals yet."))
    for item in items:
        who = escape(item["referrer"]["full_name"] or _("a friend"))
        lines.append(f"{item['rank']}. {who} — {item['referrals']}")
    lines.append("")
    if mine is None:
        lines.append(_("You have no approved referrals in this window yet."))
    else:
        lines.append(_("Your rank: {rank} ({count})").format(rank=mine[0], count=mine[1]))
    return "\n".join(lines)


REWARD_REASONS = {
    "referral_qualified": N_("a referral qualified"),
    "referred_signup_bonus": N_("a bonus for joining with a code"),
    "milestone": N_("a milestone bonus"),
    "adjustment": N_("an adjustment"),
    "reversal": N_("a reversal"),
}


def _in_hold(pending: int) -> list[str]:
    """The points in hold, when there are any (they cannot be spent yet)."""
    if not pending:
        return []
    return [
        ngettext("In hold: {pending} point", "In hold: {pending} points", pending).format(
            pending=pending
        )
    ]


def rewards_page(
    balance: int,
    pending: int,
    items: list[Any],
    *,
    page: int,
    campaigns: dict[str, str] | None = None,
) -> str:
    """The balance, the points in hold and a page of rewards, each with its status when it
    is not spendable yet (or no longer counts) and its campaign's name when not the default."""
    lines = [
        ngettext(
            "Reward balance: {balance} point", "Reward balance: {balance} points", balance
        ).format(balance=balance),
        *_in_hold(pending),
        "",
    ]
    if not items and page == 0:
        lines.append(_("No rewards yet."))
    locale = current_locale()
    names = campaigns or {}
    for reward in items:
        reason = _(REWARD_REASONS.get(reward.reason, reward.reason))
        day = format_date(reward.created_at, DATE_PATTERN, locale=locale)
        note = f" ({escape(reward.note)})" if reward.note else ""
        if reward.status == "pending":
            until = format_date(reward.available_at, DATE_PATTERN, locale=locale)
            note += " — " + _("in hold until {day}").format(day=until)
        elif reward.status == "revoked":
            note += " — " + _("revoked")
        if reward.campaign != "default":
            note += " · " + escape(names.get(reward.campaign, reward.campaign))
        lines.append(f"{reward.points:+d} — {reason}{note}, {day}")
    return "\n".join(lines)


def review_card(item: Any) -> str:
    reasons = {
        "disposable_email": _("a throwaway mail domain"),
        "same_network_as_referrer": _("signed up from the referrer's network"),
        "signup_burst": _("many sign-ups with one code at once"),
    }
    lines = [
        _("<b>Referral #{id}</b> (code <code>{code}</code>, referrer #{referrer})").format(
            id=item.id, code=escape(item.referral_code), referrer=item.referrer_id
        ),
        _("Who: {name}, {email}").format(
            name=escape(item.full_name or "—"), email=escape(item.email or "—")
        ),
        _("Why held: {reasons}").format(
            reasons=", ".join(reasons.get(r, r) for r in item.review_reasons)
        ),
    ]
    return "\n".join(lines)


def stay_rule(days: int) -> str:
    return ngettext(
        "Friends who join by this link and stay {days} day count as your referrals.",
        "Friends who join by this link and stay {days} days count as your referrals.",
        days,
    ).format(days=days)


def qr_png(link: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(link, error="m").save(buffer, kind="png", scale=8, border=2)
    return buffer.getvalue()
