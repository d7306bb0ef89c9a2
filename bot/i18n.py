"""Texts in the user's language: gettext catalogues under bot/locales, chosen per update."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from aiogram.types import TelegramObject
from aiogram.utils.i18n import I18n, I18nMiddleware

from bot.i18n_compile import LOCALES, compile_catalogues

DEFAULT_LOCALE = "en"
log = logging.getLogger(__name__)


def _catalogues_stale() -> bool:
    for po_path in LOCALES.glob("*/LC_MESSAGES/*.po"):
        mo_path = po_path.with_suffix(".mo")
        if not mo_path.exists() or mo_path.stat().st_mtime < po_path.stat().st_mtime:
            return True
    return False


@lru_cache
def get_i18n() -> I18n:
    # `make install` compiles the catalogues; a bare checkout or an edited .po still works.
    if _catalogues_stale():
        try:
            compile_catalogues()
        except OSError as exc:  # a read-only install still has the .mo files it was built with
            log.warning("could not compile the bot's translations: %r", exc)
    return I18n(path=LOCALES, default_locale=DEFAULT_LOCALE, domain="messages")


def pick_locale(*language_codes: str | None) -> str:
    """The first supported language among Telegram's codes ("ru", "pt-br", …), else English."""
    available = get_i18n().available_locales
    for code in language_codes:
        if code:
            language = code.replace("_", "-").split("-", 1)[0].lower()
            if language in available:
                return language
    return DEFAULT_LOCALE


def N_(message: str) -> str:  # the gettext convention for "mark only"
    """Mark a text for the catalogues; it is translated where it is shown."""
    return message


def translate(message: str, *, locale: str) -> str:
    return get_i18n().gettext(message, locale=locale)


def translations(message: str) -> set[str]:
    """A text in every language: reply-keyboard labels come back as plain text."""
    i18n = get_i18n()
    return {message} | {i18n.gettext(message, locale=locale) for locale in i18n.available_locales}


class LocaleMiddleware(I18nMiddleware):
    """The language Telegram reports for the user now, else the one stored, else English."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        profile = data.get("profile")
        account = data.get("account")
        return pick_locale(
            profile.language_code if profile else None,
            account.language_code if account else None,
        )
