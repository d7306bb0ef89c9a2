"""Opaque cursors of the lists ordered by id, newest first, and the pages they lead to."""

from __future__ import annotations

import base64
from typing import Any

import sqlalchemy as sa

from core.infra.db import database, is_valid_id
from core.infra.errors import InvalidInput


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
        rows = list((await connection.execute(statement)).all())
    page = rows[:limit]
    more = len(rows) > limit  # then the page is full, and its last id is where the next starts
    return page, encode_id_cursor(int(page[-1]._mapping[id_column])) if more else None


async def delete_finished(
    table: sa.Table, finished: sa.ColumnElement[Any], *, cutoff: Any, batch: int = 1000
) -> int:
    """Delete the rows finished before `cutoff`, a batch per transaction; how many."""
    removed = 0
    while True:
        old = sa.select(table.c.id).where(finished < cutoff).order_by(finished).limit(batch)
        async with database.transaction(), database.connection() as connection:
            count = (
                await connection.execute(
                    sa.delete(table).where(table.c.id.in_(old.scalar_subquery()))
                )
            ).rowcount or 0
        removed += count
        if count < batch:
            return removed
