"""Counters kept by the transaction of the change that moves them: one upsert each."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from core.db import database
from core.program.tables import program_days, program_totals, referrer_days, referrer_stats


def _upsert(table: sa.Table, keys: dict[str, Any], increments: dict[str, int]) -> Any:
    """Add `increments` to the row at `keys`, creating it (at those values) when missing."""
    insert: Any = sqlite.insert if database.is_sqlite else postgresql.insert
    statement = insert(table).values(**keys, **increments)
    return statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: table.c[name] + statement.excluded[name] for name in increments},
    )


async def bump(connection: Any, table: sa.Table, keys: dict[str, Any], **increments: int) -> None:
    increments = {name: value for name, value in increments.items() if value}
    if increments:
        await connection.execute(_upsert(table, keys, increments))


def day_of(moment: dt.datetime) -> dt.date:
    return moment.astimezone(dt.UTC).date()


async def referrer(connection: Any, referrer_id: int, **increments: int) -> None:
    await bump(connection, referrer_stats, {"referrer_id": referrer_id}, **increments)


async def referrer_day(connection: Any, referrer_id: int, day: dt.date, **increments: int) -> None:
    await bump(connection, referrer_days, {"referrer_id": referrer_id, "day": day}, **increments)


async def program(connection: Any, day: dt.date | None = None, **increments: int) -> None:
    """The overview: `signups`, `referred`, `qualified` by day (when `day` is given) and the
    totals (`users`, `referred`, `pending_review`, `qualified`, `rewards_points`)."""
    daily = {k: v for k, v in increments.items() if k in ("signups", "referred", "qualified")}
    if day is not None:
        await bump(connection, program_days, {"day": day}, **daily)
    totals = {k: v for k, v in increments.items() if k != "signups"}
    if "signups" in increments:
        totals["users"] = increments["signups"]
    await bump(connection, program_totals, {"id": 1}, **totals)
