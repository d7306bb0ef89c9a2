"""Opaque cursors of the paged lists (one codec), and the pages ordered by id, newest first."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import sqlalchemy as sa

from core.infra.db import database, execute, is_valid_id
from core.infra.errors import InvalidInput

# A cursor is base64 (URL-safe, unpadded) of a short text: "id:<id>" for the lists ordered by
# id, "<ISO moment>|<id>" for those ordered by a moment, ties broken by id.
_MAX_CURSOR = 100


def _encode(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    if len(cursor) > _MAX_CURSOR:
        raise ValueError("too long")
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()


def _row_id(digits: str) -> int:
    if not digits.isascii() or not digits.isdigit() or not is_valid_id(int(digits)):
        raise ValueError("not an id")
    return int(digits)


def _not_a_cursor() -> InvalidInput:
    return InvalidInput("Not a cursor this list gave out.", field="cursor")


def encode_id_cursor(last_id: int) -> str:
    return _encode(f"id:{last_id}")


def decode_id_cursor(cursor: str | None) -> int | None:
    """The id the next page starts below; None for the first page."""
    if cursor is None:
        return None
    try:
        prefix, _, digits = _decode(cursor).partition(":")
        if prefix != "id":
            raise ValueError("not a cursor")
        return _row_id(digits)
    except ValueError:
        raise _not_a_cursor() from None


def encode_moment_cursor(moment: dt.datetime, row_id: int) -> str:
    """The position after the row at (`moment`, `row_id`), opaque to clients."""
    return _encode(f"{moment.astimezone(dt.UTC).isoformat()}|{row_id}")


def decode_moment_cursor(cursor: str) -> tuple[dt.datetime, int]:
    try:
        moment, _, digits = _decode(cursor).partition("|")
        at = dt.datetime.fromisoformat(moment)
        if at.tzinfo is None:
            raise ValueError("not a cursor")
        # An offset that moves the moment out of the calendar (0001-01-01+14:00) overflows.
        return at.astimezone(dt.UTC), _row_id(digits)
    except (ValueError, OverflowError):
        raise _not_a_cursor() from None


async def newest_first(
    statement: sa.Select[Any], id_column: sa.ColumnElement[int], *, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """A page of `statement`'s rows by descending id, and the cursor of the next (None on the
    last page): one more row than the page is read to tell."""
    before = decode_id_cursor(cursor)
    if before is not None:
        statement = statement.where(id_column < before)
    statement = statement.order_by(id_column.desc()).limit(limit + 1)
    async with database.connection() as connection:
        rows = list((await execute(connection, statement)).all())
    page = rows[:limit]
    more = len(rows) > limit  # then the page is full, and its last id is where the next starts
    return page, encode_id_cursor(int(page[-1]._mapping[id_column])) if more else None


async def delete_finished(
    table: sa.Table, finished: sa.ColumnElement[Any], *, cutoff: Any, batch: int = 1000
) -> int:
    """Delete the rows finished before `cutoff`, a batch per transaction; how many."""
    removed = 0
    (key,) = table.primary_key.columns
    while True:
        old = sa.select(key).where(finished < cutoff).order_by(finished).limit(batch)
        async with database.transaction(), database.connection() as connection:
            # The ids first: MySQL takes no LIMIT in an IN subquery.
            ids = [row[0] for row in await execute(connection, old)]
            gone = sa.delete(table).where(key.in_(ids), finished < cutoff)
            count = (await execute(connection, gone)).rowcount or 0 if ids else 0
        removed += count
        if count < batch:
            return removed
