"""Opaque cursors of the lists ordered by id, newest first."""

from __future__ import annotations

import base64

from core.db import is_valid_id
from core.errors import InvalidInput


def encode_id_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_id_cursor(cursor: str | None) -> int | None:
    """The id the next page starts below; None for the first page."""
    if cursor is None:
        return None
    try:
        if len(cursor) > 100:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, digits = raw.partition(":")
        if prefix != "id" or not digits.isascii() or not digits.isdigit():
            raise ValueError("not a cursor")
        if not is_valid_id(int(digits)):
            raise ValueError("no such id")
        return int(digits)
    except ValueError:
        raise InvalidInput("Not a cursor this list gave out.", field="cursor") from None
