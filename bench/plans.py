"""The query plans the hot paths rely on, for the statements the service really runs.

    .venv/bin/python -m bench.plans      # on the seeded benchmark database (bench/seed.py)

Each statement is taken from the core (its `Read`, compiled for PostgreSQL as the service
compiles it) and run under EXPLAIN (ANALYZE, BUFFERS) with the benchmark's parameters.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from bench import seed
from core.auth import service as auth
from core.infra.db import Read
from core.program import stats as program
from core.referrals import service as referrals


def compiled(read: Read) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """The SQL, its parameters in order, and the values the statement binds itself."""
    statement = read.statement.compile(dialect=asyncpg_dialect())
    bound = {name: value for name, value in statement.params.items() if value is not None}
    return statement.string, tuple(statement.positiontup or ()), bound


async def cursor_at(connection: asyncpg.Connection, depth: int) -> tuple[dt.datetime, int]:
    row = await connection.fetchrow(
        "SELECT created_at, id FROM users WHERE referrer_id = $1 "
        "ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1",
        seed.BIG,
        depth - 1,
    )
    return row["created_at"], row["id"]


async def main() -> None:
    connection = await asyncpg.connect(seed.DATABASE_URL)
    try:
        after_at, after_id = await cursor_at(connection, 90_000)
        now = dt.datetime.now(dt.UTC)
        cases: list[tuple[str, Read, dict[str, Any]]] = [
            (
                "the signed-in user (every authenticated request)",
                auth._ACCOUNT_BY_ID,
                {"user_id": seed.LOOKUP_USER},
            ),
            (
                "lookup by email, on a miss",
                referrals._LIVE_CODE_BY_EMAIL,
                {"email": "nocode@example.com", "now": now},
            ),
            ("lookup by code, on a miss", referrals._LIVE_CODE, {"code": seed.CODE, "now": now}),
            (
                "referrals, page 1 of 100 000",
                referrals._FIRST_PAGE,
                {"referrer": seed.BIG, "limit": 51},
            ),
            (
                "referrals, 90 000 deep by cursor",
                referrals._PAGE_AFTER,
                {"referrer": seed.BIG, "limit": 51, "after_at": after_at, "after_id": after_id},
            ),
            (
                "referrals, 90 000 deep by offset (older clients)",
                referrals._PAGE_AT,
                {"referrer": seed.BIG, "limit": 51, "offset": 90_000},
            ),
            (
                "a referrer's stats (the totals and 30 days, one statement)",
                program._STATS,
                {"user": seed.BIG, "first": now.date() - dt.timedelta(days=29)},
            ),
            (
                "the leaderboard, 30 days",
                program._LEADERS,
                {"first": now.date() - dt.timedelta(days=29), "limit": 10},
            ),
        ]
        for name, read, params in cases:
            sql, names, bound = compiled(read)
            values = {**bound, **params}
            rows = await connection.fetch(
                f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", *(values[n] for n in names)
            )
            print(f"### {name}\n\n```\n{sql}\n\n" + "\n".join(r[0] for r in rows) + "\n```\n")
    finally:
        await connection.close()


if __name__ == "__main__":
    asyncio.run(main())
