"""The database read paths on MariaDB: part `mariadb` of `make bench` (bench/run.py).

    .venv/bin/python -m bench.run --parts mariadb [--rounds 3]

The same 1M users as the PostgreSQL run (bench/seed.py's rows, ids and codes), seeded into
BENCH_MARIADB_URL (default mysql://root@127.0.0.1:3306/referral_bench; dropped and made
again by the project's migrations when it does not hold them yet). The service runs on it
as in production; its ceiling (bench/ceiling_mysql.py) does the same I/O bare, with the same
driver (asyncmy) and pool size. Measured as bench/run.py measures the PostgreSQL paths:
/users/me, the uncached lookup, a referrer's stats, the referrals page, and the deep page by
cursor against page 1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from typing import Any

import asyncmy
from sqlalchemy.engine import make_url

from bench import seed
from core.infra import security
from core.migrate import upgrade_to_head

DATABASE_URL = os.environ.get("BENCH_MARIADB_URL", "mysql://root@127.0.0.1:3306/referral_bench")
REDIS_URL = os.environ.get("BENCH_MARIADB_REDIS_URL", "redis://127.0.0.1:6379/11")
_DAY = "date(created_at)"  # UTC without a zone, as the service stores it
COUNTERS = [
    statement.replace(seed._DAY, _DAY).replace("$", "%s") for statement in seed.PROGRAM_COUNTERS
]


async def _connect(*, to_database: bool = True) -> Any:
    """A connection to the benchmark's server, in its database unless told otherwise."""
    parsed = make_url(DATABASE_URL)
    options: dict[str, Any] = {
        "host": parsed.host,
        "port": parsed.port or 3306,
        "user": parsed.username,
        "password": parsed.password or "",
        "autocommit": False,
    }
    if to_database:
        options["db"] = parsed.database
    return await asyncmy.connect(**options)


async def _seeded(wanted: str) -> bool:
    try:
        connection = await _connect()
    except Exception:
        return False
    try:
        async with connection.cursor() as cursor:
            await cursor.execute("SELECT seeded FROM bench_seed")
            marker = await cursor.fetchone()
            await cursor.execute("SELECT version_num FROM alembic_version")
            head = await cursor.fetchone()
    except Exception:
        return False
    finally:
        connection.close()
    return bool(marker and marker[0] == wanted and head and head[0] == seed._head_revision())


def _naive(value: Any) -> Any:
    return (
        value.astimezone(dt.UTC).replace(tzinfo=None) if isinstance(value, dt.datetime) else value
    )


async def seed_mariadb(users: int) -> None:
    name = make_url(DATABASE_URL).database
    wanted = f"{seed.SEED_VERSION}:{users}"
    if await _seeded(wanted):
        print(f"bench: {name} (MariaDB) already holds {users:,} users")
        return
    began = time.monotonic()
    server = await _connect(to_database=False)
    try:
        async with server.cursor() as cursor:
            await cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            await cursor.execute(f"CREATE DATABASE `{name}`")
    finally:
        server.close()
    await asyncio.to_thread(upgrade_to_head, DATABASE_URL)
    password_hash = await security.hash_password(seed.PASSWORD)
    rows = [tuple(_naive(v) for v in row) for row in seed._users(users, password_hash)]
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    later = now + dt.timedelta(days=300)
    connection = await _connect()
    try:
        async with connection.cursor() as cursor:
            columns = ", ".join(seed.COLUMNS)
            insert = f"INSERT INTO users ({columns}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            for start in range(0, len(rows), 5000):
                await cursor.executemany(insert, rows[start : start + 5000])
            await cursor.execute(
                "UPDATE users JOIN (SELECT referrer_id, count(*) AS n FROM users"
                " WHERE referrer_id IS NOT NULL GROUP BY referrer_id) AS counted"
                " ON counted.referrer_id = users.id SET users.referral_count = counted.n"
            )
            codes = "INSERT INTO referral_codes (code, owner_id, created_at, expires_at, uses, closed_at) VALUES (%s, %s, %s, %s, %s, %s)"  # noqa: E501
            await cursor.executemany(
                codes,
                [
                    (seed.CODE, seed.LOOKUP_USER, now, later, 0, None),
                    ("big-code", seed.BIG, now, later, seed.BIG_REFERRALS, None),
                    ("small-code", seed.SMALL, now, later, seed.SMALL_REFERRALS, None),
                ],
            )
            others = [
                (f"code-{owner}", owner, now, later, 0, now if owner % 2 else None)
                for owner in range(
                    seed.SMALL + 1, seed.SMALL + 1 + min(seed.OTHER_CODES, users - seed.SMALL)
                )
            ]
            for start in range(0, len(others), 5000):
                await cursor.executemany(codes, others[start : start + 5000])
            for statement in COUNTERS:
                await cursor.execute(statement)
            await cursor.execute("CREATE TABLE bench_seed (seeded VARCHAR(64) NOT NULL)")
            await cursor.execute("INSERT INTO bench_seed VALUES (%s)", (wanted,))
        await connection.commit()
        async with connection.cursor() as cursor:
            for table in ("users", "referral_codes", "referrals", "referrer_days"):
                await cursor.execute(f"ANALYZE TABLE {table}")
                await cursor.fetchall()
    finally:
        connection.close()
    print(
        f"bench: seeded {users:,} users into {name} (MariaDB) in {time.monotonic() - began:.0f} s"
    )


async def deep_cursor(depth: int) -> str:
    from core.infra.pagination import encode_moment_cursor

    connection = await _connect()
    try:
        async with connection.cursor() as cursor:
            await cursor.execute(
                "SELECT created_at, id FROM users WHERE referrer_id = %s"
                " ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET %s",
                (seed.BIG, depth - 1),
            )
            created_at, user_id = await cursor.fetchone()
    finally:
        connection.close()
    return encode_moment_cursor(created_at.replace(tzinfo=dt.UTC), user_id)
