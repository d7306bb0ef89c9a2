"""Seed the benchmark database: 1M users, a referrer with 100 000 referrals, in about a minute.

    .venv/bin/python -m bench.seed [--users 1000000] [--force]

The database (BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/referral_bench)
is dropped and made again by the project's migrations, then filled by COPY. A database seeded
with the same parameters and the current migrations is left alone (unless --force).

Who is who (the benchmark reads these ids):
- 1 `bench@example.com`, with the live code `bench-code`: both cached lookups;
- 2 `nocode@example.com`, no code: the uncached lookup; an operator (the funnel's reader);
- 3 `big@example.com`: 100 000 referrals (the deep pages);
- 4 `small@example.com`: 200 referrals (the page every referrer sees);
- everyone else, half of them referred by one of a thousand ordinary referrers;
- 200 000 more codes (of users 5 onwards, every other one closed), so the lookups' plans are
  those of a table at scale;
- the program's counters as the migration that added them computes them from the users table:
  sign-ups run up to now (one every 20 s), so the last 30 days hold about 130 000 of them,
  half referred by the thousand ordinary referrers (what stats and the leaderboard read).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import time

import asyncpg

from core.infra import security
from core.migrate import upgrade_to_head

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/referral_bench"
)
PASSWORD = "bench-password"
CODE = "bench-code"
LOOKUP_USER, NO_CODE_USER, BIG, SMALL = 1, 2, 3, 4
BIG_REFERRALS, SMALL_REFERRALS = 100_000, 200
SEED_VERSION = 6  # raise when what is seeded changes
OTHER_CODES = 200_000  # codes of other users (half closed): the lookups' plans at scale

COLUMNS = (
    "id",
    "email",
    "password_hash",
    "full_name",
    "referrer_id",
    "referral_code",
    "created_at",
)


# What migration 0006 runs on an existing database (every referral approved).
_DAY = "CAST(created_at AT TIME ZONE 'UTC' AS date)"
PROGRAM_COUNTERS = (
    "DELETE FROM program_totals",  # the migration's row of an empty database
    "INSERT INTO referrals (id, referrer_id, code, status, review_reasons, created_at) "
    "SELECT id, referrer_id, COALESCE(referral_code, ''), 'approved', '[]', created_at "
    "FROM users WHERE referrer_id IS NOT NULL",
    "INSERT INTO referrer_stats (referrer_id, approved) "
    "SELECT referrer_id, count(*) FROM users WHERE referrer_id IS NOT NULL GROUP BY referrer_id",
    "INSERT INTO referrer_days (referrer_id, day, referrals, approved) "
    f"SELECT referrer_id, {_DAY}, count(*), count(*) FROM users "
    f"WHERE referrer_id IS NOT NULL GROUP BY referrer_id, {_DAY}",
    "INSERT INTO program_days (day, signups, referred) "
    f"SELECT {_DAY}, count(*), count(referrer_id) FROM users GROUP BY {_DAY}",
    "INSERT INTO program_totals (id, users, referred) "
    "SELECT 1, count(*), count(referrer_id) FROM users",
    # What migration 0011 keeps from here on (every referral in the default campaign).
    "INSERT INTO referrer_campaigns (referrer_id, campaign_id, referrals) "
    "SELECT referrer_id, 1, count(*) FROM users WHERE referrer_id IS NOT NULL "
    "GROUP BY referrer_id",
    "INSERT INTO campaign_days (campaign_id, day, signups) "
    f"SELECT 1, {_DAY}, count(referrer_id) FROM users GROUP BY {_DAY}",
    # Each code owner's span in the default campaign, and its days (what the funnel reads).
    "INSERT INTO code_spans (owner_id, campaign_id, began_at, until) "
    "SELECT owner_id, 1, min(created_at), max(CASE WHEN closed_at < expires_at THEN closed_at "
    "ELSE expires_at END) FROM referral_codes GROUP BY owner_id",
    "INSERT INTO code_span_days (campaign_id, day, began, ended) "
    "SELECT 1, day, sum(b), sum(e) FROM ("
    "SELECT CAST(began_at AT TIME ZONE 'UTC' AS date) AS day, 1 AS b, 0 AS e FROM code_spans "
    "UNION ALL SELECT CAST(until AT TIME ZONE 'UTC' AS date), 0, 1 FROM code_spans) AS edges "
    "GROUP BY day",
    # The operator the funnel is read as.
    f"UPDATE users SET is_superuser = true WHERE id = {2}",
)


def _server_url(url: str) -> tuple[str, str]:
    """The URL of the server's maintenance database, and the benchmark database's name."""
    base, _, name = url.rpartition("/")
    return base + "/postgres", name


def _users(total: int, password_hash: str) -> list[tuple[object, ...]]:
    rng = random.Random(8)  # the same data every time
    # Sign-ups run up to now: the window stats and the leaderboard read holds a month's worth.
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=20 * total)
    named = {
        LOOKUP_USER: "bench@example.com",
        NO_CODE_USER: "nocode@example.com",
        BIG: "big@example.com",
        SMALL: "small@example.com",
    }
    big = range(SMALL + 1, SMALL + 1 + BIG_REFERRALS)
    small = range(big.stop, big.stop + SMALL_REFERRALS)
    ordinary_referrers = range(small.stop, small.stop + 1000)
    rows = []
    for user_id in range(1, total + 1):
        referrer, code = None, None
        if user_id in big:
            referrer, code = BIG, "big-code"
        elif user_id in small:
            referrer, code = SMALL, "small-code"
        elif user_id >= ordinary_referrers.stop and user_id % 2 == 0:
            referrer = rng.choice(ordinary_referrers)
        email = named.get(user_id, f"user{user_id}@example.com")
        created = start + dt.timedelta(seconds=20 * user_id)  # sign-ups in id order
        rows.append((user_id, email, password_hash, f"User {user_id}", referrer, code, created))
    return rows


async def seed(users: int, *, force: bool = False) -> None:
    maintenance, name = _server_url(DATABASE_URL)
    wanted = f"{SEED_VERSION}:{users}"
    if not force and await _seeded(wanted):
        print(f"bench: {name} already holds {users:,} users (--force seeds again)")
        return
    began = time.monotonic()
    server = await asyncpg.connect(maintenance)
    try:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.execute(f'CREATE DATABASE "{name}"')
    finally:
        await server.close()
    await asyncio.to_thread(upgrade_to_head, DATABASE_URL)
    # Hashed with the service's own parameters: the login load verifies real hashes.
    password_hash = await security.hash_password(PASSWORD)
    connection = await asyncpg.connect(DATABASE_URL)
    try:
        async with connection.transaction():
            await connection.copy_records_to_table(
                "users", records=_users(users, password_hash), columns=COLUMNS
            )
            await connection.execute(
                "SELECT setval(pg_get_serial_sequence('users', 'id'), $1)", users
            )
            await connection.execute(
                """UPDATE users SET referral_count = counted.n
                   FROM (SELECT referrer_id, count(*) AS n FROM users
                         WHERE referrer_id IS NOT NULL GROUP BY referrer_id) AS counted
                   WHERE users.id = counted.referrer_id"""
            )
            now = dt.datetime.now(dt.UTC)
            await connection.executemany(
                """INSERT INTO referral_codes (code, owner_id, created_at, expires_at, uses,
                   closed_at) VALUES ($1, $2, $3, $4, $5, $6)""",
                [
                    (CODE, LOOKUP_USER, now, now + dt.timedelta(days=300), 0, None),
                    ("big-code", BIG, now, now + dt.timedelta(days=300), BIG_REFERRALS, None),
                    ("small-code", SMALL, now, now + dt.timedelta(days=300), SMALL_REFERRALS, None),
                ],
            )
            await connection.copy_records_to_table(
                "referral_codes",
                records=[
                    (
                        f"code-{owner}",
                        owner,
                        now,
                        now + dt.timedelta(days=300),
                        0,
                        now if owner % 2 else None,
                    )
                    for owner in range(SMALL + 1, SMALL + 1 + min(OTHER_CODES, users - SMALL))
                ],
                columns=("code", "owner_id", "created_at", "expires_at", "uses", "closed_at"),
            )
            for statement in PROGRAM_COUNTERS:
                await connection.execute(statement)
            await connection.execute("CREATE TABLE bench_seed (seeded text NOT NULL)")
            await connection.execute("INSERT INTO bench_seed VALUES ($1)", wanted)
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()
    print(f"bench: seeded {users:,} users into {name} in {time.monotonic() - began:.0f} s")


async def _seeded(wanted: str) -> bool:
    try:
        connection = await asyncpg.connect(DATABASE_URL)
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        marker = await connection.fetchval("SELECT seeded FROM bench_seed")
        head = await connection.fetchval("SELECT version_num FROM alembic_version")
    except asyncpg.PostgresError:
        return False
    finally:
        await connection.close()
    return bool(marker == wanted and head == _head_revision())


def _head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from core.migrate import ROOT

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    return str(ScriptDirectory.from_config(config).get_current_head())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    asyncio.run(seed(args.users, force=args.force))


if __name__ == "__main__":
    main()
