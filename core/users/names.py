"""People's names: what may be stored and shown to others.

Control characters and the invisible bidirectional overrides let a name rewrite the text
around it ("…joined via Alice" reading backwards, a name spanning lines), so the API refuses
them and names that come from Telegram are stored without them. Joiners (U+200C, U+200D) stay:
emoji sequences and several scripts need them.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_LENGTH = 100

_BIDI_CONTROLS = frozenset([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])
_UNSAFE_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})  # controls, line and paragraph separators


def is_unsafe(character: str) -> bool:
    return ord(character) in _BIDI_CONTROLS or unicodedata.category(character) in _UNSAFE_CATEGORIES


def check_name(name: str) -> str:
    """A name given through the API: refused (ValueError) when it holds unsafe characters."""
    if any(is_unsafe(character) for character in name):
        raise ValueError("must not contain control or text-direction characters")
    if not name.strip():
        raise ValueError("must not be blank")
    return name


def clean_name(name: str | None) -> str | None:
    """A name from elsewhere (Telegram): unsafe characters dropped, spaces tidied, clipped."""
    if not name:
        return None
    kept = "".join(" " if is_unsafe(character) else character for character in name)
    return " ".join(kept.split())[:MAX_NAME_LENGTH] or None
