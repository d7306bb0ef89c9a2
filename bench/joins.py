"""The bot's write path of a campaign grown inside Telegram: a join by a participant's invite
link, against a bare asyncpg loop doing the same writes, on PostgreSQL.

    .venv/bin/python -m bench.joins [--joins 2000] [--rounds 3]   # part of `make bench`
    .venv/bin/python -m bench.joins --trace                       # the statements of one join

Both handle `chat_member` updates of new people joining one chat by one participant's link
(BENCH_JOINS_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/referral_bench_joins,
made again by the migrations), 32 at a time, spread over 500 participants' links:

- service: the bot's real dispatcher (`bot.app.create_dispatcher`: its middlewares, the
  invites router, `core.invites`): each update recorded once, the person's row locked, the
  link read, the account and the referral made as `/start <code>` makes them (review,
  counters, events), the referrer's chat message and the stay check queued;
- ceiling: the same statements, in one transaction per join, straight on an asyncpg pool of
  the same size, with no framework around them.

Rounds alternate which goes first; the ratio is the median of each round's pair (target 0.5).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import time
from typing import Any

import asyncpg

from bench import jobs

DATABASE_URL = os.environ.get(
    "BENCH_JOINS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/referral_bench_joins"
)
CHAT = -1001000000001
PARTICIPANTS = 500  # whose links the joins spread over (one referrer's rows queue joins)
CONCURRENCY = 32
TARGET = 0.5
_people = iter(range(10**12, 10**13))  # Telegram ids no round reuses

# The ceiling's join: what the service's statements do (tables and constraints alike).
CEILING = {
    "campaigns": "SELECT id, key, name, status, starts_at, ends_at, rules, created_at "
    "FROM campaigns ORDER BY id",
    "update": "INSERT INTO chat_updates (update_id, applied_at) VALUES ($1, now()) "
    "ON CONFLICT DO NOTHING",
    "member": "INSERT INTO chat_members (chat_id, telegram_id, status, joins, updated_at) "
    "VALUES ($1, $2, 'left', 0, now()) ON CONFLICT DO NOTHING",
    "lock": "SELECT * FROM chat_members WHERE chat_id = $1 AND telegram_id = $2 FOR UPDATE",
    "link": "SELECT * FROM invite_links WHERE link = $1 AND chat_id = $2 AND revoked_at IS NULL",
    "account": "SELECT id FROM users WHERE telegram_id = $1",
    "claim": "UPDATE referral_codes SET uses = uses + 1 WHERE code = $1 AND closed_at IS NULL "
    "AND expires_at > now() AND (max_uses IS NULL OR uses < max_uses) "
    "RETURNING owner_id, campaign_id",
    "referrer": "UPDATE users SET referral_count = referral_count + 1 WHERE id = $1 "
    "AND blocked_at IS NULL RETURNING referral_count, telegram_id",
    "code": "SELECT * FROM referral_codes WHERE code = $1",
    "user": "INSERT INTO users (telegram_id, full_name, language_code, referrer_id, "
    "referral_code, created_at) VALUES ($1, $2, 'en', $3, $4, now()) RETURNING id, created_at",
    "campaign": "SELECT id, key, name, status, starts_at, ends_at, rules, created_at "
    "FROM campaigns WHERE id = $1",
    "burst": "SELECT count(*) FROM referrals WHERE code = $1 "
    "AND created_at > now() - interval '1 hour'",
    "referral": "INSERT INTO referrals (id, referrer_id, code, campaign_id, status, "
    "review_reasons, created_at) VALUES ($1, $2, $3, $4, 'approved', '[]', now())",
    "referrer_campaign": "INSERT INTO referrer_campaigns (referrer_id, campaign_id, referrals) "
    "VALUES ($1, $2, 1) ON CONFLICT (referrer_id, campaign_id) DO UPDATE "
    "SET referrals = referrer_campaigns.referrals + 1",
    "endpoints": "SELECT id, events FROM webhook_endpoints WHERE enabled",
    "job": "INSERT INTO jobs (kind, payload, status, attempts, max_attempts, run_at, "
    "created_at) VALUES ($1, $2, 'queued', 0, 8, now() + $3 * interval '1 second', now())",
    "joined": "UPDATE chat_members SET status = 'member', referral_id = $3, link_id = $4, "
    "joins = 1, joined_at = now(), updated_at = now() WHERE chat_id = $1 AND telegram_id = $2",
    "left_at": "UPDATE referrals SET left_at = NULL WHERE id = $1 RETURNING campaign_id",
    "stats": "INSERT INTO referrer_stats (referrer_id, approved) VALUES ($1, 1) "
    "ON CONFLICT (referrer_id) DO UPDATE SET approved = referrer_stats.approved + 1",
    "days": "INSERT INTO referrer_days (referrer_id, day, referrals, approved) "
    "VALUES ($1, current_date, 1, 1) ON CONFLICT (referrer_id, day) DO UPDATE SET "
    "referrals = referrer_days.referrals + 1, approved = referrer_days.approved + 1",
    "campaign_days": "INSERT INTO campaign_days (campaign_id, day, signups) "
    "VALUES ($1, current_date, 1) ON CONFLICT (campaign_id, day) DO UPDATE SET "
    "signups = campaign_days.signups + 1",
    "program_days": "INSERT INTO program_days (day, signups, referred) "
    "VALUES (current_date, 1, 1) ON CONFLICT (day) DO UPDATE SET "
    "signups = program_days.signups + 1, referred = program_days.referred + 1",
    "totals": "INSERT INTO program_totals (id, users, referred) VALUES (1, 1, 1) "
    "ON CONFLICT (id) DO UPDATE SET users = program_totals.users + 1, "
    "referred = program_totals.referred + 1",
}


def link_of(n: int) -> str:
    return f"https://t.me/+bench-joins-{n % PARTICIPANTS}"


async def seed(core: Any) -> list[str]:
    """The campaign, its chat (ready), PARTICIPANTS participants with a chat, each with a
    code and an invite link."""
    from core.infra import clock
    from core.infra.db import database, execute
    from core.operators.service import Operator
    from core.telegram.tables import READY, invite_links, telegram_chats

    campaign = await core.campaigns.create(
        operator=Operator(),
        key="club",
        name="Club",
        # No review can hold a join here: the burst limit is far above a round.
        rules={
            "telegram": {"chat_id": CHAT, "qualify_after_days": 7},
            "review": {"burst_limit": 10**6, "burst_seconds": 3600},
        },
    )
    async with database.transaction(), database.connection() as connection:
        await execute(
            connection,
            telegram_chats.insert().values(
                chat_id=CHAT, title="Club", status=READY, checked_at=clock.utcnow()
            ),
        )
    codes = []
    for n in range(PARTICIPANTS):
        owner, _ = await core.accounts.sign_up_telegram(
            telegram_id=1_000 + n, full_name=f"Participant {n}", username=None, language_code="en"
        )
        code = await core.referrals.create_code(
            owner=owner, campaign=campaign, expires_at=clock.utcnow() + dt.timedelta(days=90)
        )
        async with database.transaction(), database.connection() as connection:
            await execute(
                connection,
                invite_links.insert().values(
                    user_id=owner.id,
                    campaign_id=campaign.id,
                    chat_id=CHAT,
                    link=link_of(n),
                    code=code.code,
                    join_request=False,
                    created_at=clock.utcnow(),
                ),
            )
        codes.append(code.code)
    return codes


def join_update(update_id: int, telegram_id: int) -> dict[str, Any]:
    person = {"id": telegram_id, "is_bot": False, "first_name": "Friend", "language_code": "en"}
    return {
        "update_id": update_id,
        "chat_member": {
            "chat": {"id": CHAT, "type": "channel", "title": "Club"},
            "from": person,
            "date": int(time.time()),
            "old_chat_member": {"status": "left", "user": person},
            "new_chat_member": {"status": "member", "user": person},
            "invite_link": {
                "invite_link": link_of(telegram_id),
                "creator": {"id": 1, "is_bot": True, "first_name": "bot"},
                "creates_join_request": False,
                "is_primary": False,
                "is_revoked": False,
            },
        },
    }


async def _timed(count: int, one: Any) -> tuple[float, list[float]]:
    """Joins per second of `count` calls of `one(n)`, CONCURRENCY at a time, and latencies."""
    gate = asyncio.Semaphore(CONCURRENCY)
    latencies: list[float] = []

    async def run(n: int) -> None:
        async with gate:
            began = time.perf_counter()
            await one(n)
            latencies.append((time.perf_counter() - began) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(run(n) for n in range(count)))
    return count / (time.perf_counter() - started), latencies


async def service_round(dispatcher: Any, bot: Any, count: int, first_update: int) -> Any:
    people = [next(_people) for _ in range(count)]

    async def one(n: int) -> None:
        await dispatcher.feed_raw_update(bot, join_update(first_update + n, people[n]))

    return await _timed(count, one)


async def ceiling_round(pool: asyncpg.Pool, codes: list[str], count: int, first_update: int) -> Any:
    people = [next(_people) for _ in range(count)]
    q = CEILING

    async def one(n: int) -> None:
        telegram_id = people[n]
        code = codes[telegram_id % PARTICIPANTS]
        async with pool.acquire() as connection:
            await connection.fetch(q["campaigns"])  # the handler: is this chat a campaign's?
            async with connection.transaction():
                await connection.execute(q["update"], first_update + n)
                await connection.execute(q["member"], CHAT, telegram_id)
                await connection.fetchrow(q["lock"], CHAT, telegram_id)
                link = await connection.fetchrow(q["link"], link_of(telegram_id), CHAT)
                await connection.fetchval(q["account"], telegram_id)
                claimed = await connection.fetchrow(q["claim"], link["code"])
                owner, campaign_id = claimed["owner_id"], claimed["campaign_id"]
                referrer = await connection.fetchrow(q["referrer"], owner)
                await connection.fetchrow(q["code"], code)  # the claimed code, as it is now
                user = await connection.fetchrow(q["user"], telegram_id, "Friend", owner, code)
                await connection.fetchrow(q["campaign"], campaign_id)  # running? its review
                await connection.fetchval(q["burst"], code)
                await connection.execute(q["referral"], user["id"], owner, code, campaign_id)
                await connection.execute(q["referrer_campaign"], owner, campaign_id)
                await connection.fetch(q["endpoints"])
                message = {"recipient_id": owner, "message": "new_referral", "referral_id": 1}
                message["referral_count"] = referrer["referral_count"]
                await connection.execute(q["job"], "telegram.message", json.dumps(message), 0)
                await connection.execute(q["joined"], CHAT, telegram_id, user["id"], link["id"])
                await connection.fetchval(q["left_at"], user["id"])
                await connection.fetchrow(q["campaign"], campaign_id)  # its stay's wait
                stay = {"chat_id": CHAT, "telegram_id": telegram_id, "referral_id": user["id"]}
                await connection.execute(q["job"], "telegram.stay", json.dumps(stay), 7 * 86400)
                # The counters in the service's order: per referrer, then the shared rows.
                await connection.execute(q["stats"], owner)
                await connection.execute(q["days"], owner)
                await connection.execute(q["campaign_days"], campaign_id)
                await connection.execute(q["program_days"])
                await connection.execute(q["totals"])

    return await _timed(count, one)


async def trace(core: Any, dispatcher: Any, bot: Any) -> None:
    """Print the statements one join runs (what the ceiling mirrors)."""
    import sqlalchemy as sa

    from core.infra import db

    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split())[:160])

    sa.event.listen(db.database.engine.sync_engine, "before_cursor_execute", record)
    await dispatcher.feed_raw_update(bot, join_update(1, next(_people)))
    for n, statement in enumerate(seen, 1):
        print(f"{n:2}. {statement}")


async def main_async(args: argparse.Namespace) -> list[tuple[float, float, float, float]]:
    os.environ.update(DATABASE_URL=DATABASE_URL, ENV_FILE="none", LOG_LEVEL="WARNING")
    os.environ.setdefault("TELEGRAM_BOT_USERNAME", "bench_bot")
    await jobs.recreate(DATABASE_URL)
    from bot.app import create_bot, create_dispatcher
    from core.container import build_core
    from core.infra.ratelimit import Rate
    from core.infra.settings import get_settings

    core = build_core(get_settings())
    await core.start()
    bot = create_bot("123456:AAHbench-token-0123456789abcdefghij", api_url="http://127.0.0.1:9")
    dispatcher = create_dispatcher(core, rate=Rate(count=10**6, seconds=1))
    codes = await seed(core)
    pool = await asyncpg.create_pool(DATABASE_URL, min_size=CONCURRENCY, max_size=CONCURRENCY)
    pairs = []
    try:
        if args.trace:
            await trace(core, dispatcher, bot)
            return []
        update = 1000
        for n in range(args.rounds):
            order = ("service", "ceiling") if n % 2 == 0 else ("ceiling", "service")
            result: dict[str, Any] = {}
            for which in order:
                if which == "service":
                    result[which] = await service_round(dispatcher, bot, args.joins, update)
                else:
                    result[which] = await ceiling_round(pool, codes, args.joins, update)
                update += args.joins
            (service, s_lat), (ceiling, c_lat) = result["service"], result["ceiling"]
            pairs.append((service, ceiling, _p(s_lat, 99), _p(c_lat, 99)))
            print(
                f"round {n + 1}: service {service:.0f} joins/s (p50 {_p(s_lat, 50):.1f} ms, "
                f"p99 {_p(s_lat, 99):.1f} ms), ceiling {ceiling:.0f} joins/s "
                f"(p50 {_p(c_lat, 50):.1f} ms, p99 {_p(c_lat, 99):.1f} ms)"
            )
    finally:
        await pool.close()
        await dispatcher.emit_shutdown()
        await bot.session.close()
        await core.stop()
    return pairs


def _p(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, len(ordered) * percent // 100)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joins", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    pairs = asyncio.run(main_async(args))
    if args.trace:
        return 0
    ratio = statistics.median(service / ceiling for service, ceiling, _, _ in pairs)
    held = ratio >= TARGET
    print(
        f"\njoin by an invite link: service {statistics.median(p[0] for p in pairs):.0f} "
        f"joins/s, ceiling {statistics.median(p[1] for p in pairs):.0f} joins/s, ratio "
        f"{ratio:.2f} (target >= {TARGET}: {'holds' if held else 'MISSED'})"
    )
    return 0 if held else 1


if __name__ == "__main__":
    raise SystemExit(main())
