"""The catalogues: every text the bot shows exists in English and Russian, whole and intact."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.i18n_compile import LOCALES
from tests.bot.conftest import tn

BOT = Path(__file__).resolve().parents[2] / "bot"
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2), "gettext": (1, 2), "translate": None}
# Format fields, HTML tags and /commands must come through a translation unchanged.
PLACEHOLDER = re.compile(r"\{[^{}]*\}|</?\w+>|/\w+")
NAMES = re.compile(r"\b(?:API|Telegram|QR)\b")


def _catalog(lang: str) -> Catalog:
    with (LOCALES / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po)


def _in_code() -> set[str | tuple[str, ...]]:
    return {
        message
        for _file, _line, message, _comments, _context in extract_from_dir(
            BOT, method_map=[("**.py", "python")], keywords=KEYWORDS
        )
    }


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_the_catalogue_matches_the_code(lang: str) -> None:
    catalogued = {message.id for message in _catalog(lang) if message.id}
    used = _in_code()
    assert sorted(map(str, used - catalogued)) == [], "texts missing from the catalogue"
    assert sorted(map(str, catalogued - used)) == [], "texts no longer used"


def test_every_russian_text_is_translated_with_its_placeholders() -> None:
    catalog = _catalog("ru")
    assert catalog.num_plurals == 3
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert len(strings) == (3 if message.pluralizable else 1), message.id
        wanted = sorted(PLACEHOLDER.findall(ids[-1]))
        for text in strings:
            assert text.strip(), f"untranslated: {message.id!r}"
            assert sorted(PLACEHOLDER.findall(text)) == wanted, (message.id, text)
            leftover = NAMES.sub("", PLACEHOLDER.sub("", text))
            assert not re.search(r"[A-Za-z]{3,}", leftover), f"English left in: {text!r}"


@pytest.mark.parametrize(
    ("count", "word"),
    [
        (1, "реферал"),
        (2, "реферала"),
        (5, "рефералов"),
        (11, "рефералов"),
        (21, "реферал"),
        (22, "реферала"),
        (112, "рефералов"),
    ],
)
def test_russian_plural_forms(count: int, word: str) -> None:
    text = tn("You have {total} referral.", "You have {total} referrals.", count, "ru", total=count)
    assert text == f"У вас {count} {word}."


def test_russian_texts_read_as_russian() -> None:
    """No semicolons copied from English, no "API" jargon, "по приглашению" without "от"."""
    for message in _catalog("ru"):
        if not message.id:
            continue
        texts = [message.string] if isinstance(message.string, str) else list(message.string)
        for text in texts:
            assert ";" not in text, (message.id, text)
            assert "API" not in text, (message.id, text)
            assert "приглашению от" not in text, (message.id, text)


def test_user_texts_in_english_name_no_api() -> None:
    for message in _catalog("en"):
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        for text in ids:
            assert "API" not in text, text
