"""One worker's job throughput against a bare claim-and-finish loop, on PostgreSQL.

    .venv/bin/python -m bench.jobs [--jobs 3000] [--rounds 3]     # part of `make bench`

Both take the same no-op jobs from the same `jobs` table (BENCH_JOBS_DATABASE_URL, default
postgresql://postgres@127.0.0.1:5432/referral_bench_jobs, made again by the migrations):

- service: the core's `Worker` (its real loop: claims with `FOR UPDATE SKIP LOCKED` whenever a
  slot is free, runs each job as a task under its deadline, records each outcome under its
  lease, counts `jobs_total`), concurrency 8;
- ceiling: a bare asyncpg loop with the same statements: claim up to 8 due jobs with the same
  `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)`, finish each one by its lease.

Rounds alternate which goes first; the ratio is the median of each round's pair. The target
is 0.5 of the ceiling's jobs per second.

Then the wake-up: two worker processes (`python -m bench.jobs --worker`) sit idle with a poll
of 5 s; jobs are enqueued one at a time, each committed alone, and each records when it
started. The median from the enqueue to the start is the figure (target: under 100 ms, far
below the poll: the enqueue's NOTIFY wakes them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import time

import asyncpg
import sqlalchemy as sa

DATABASE_URL = os.environ.get(
    "BENCH_JOBS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/referral_bench_jobs"
)
KIND = "bench.noop"
CONCURRENCY = 8
TARGET = 0.5

_CLAIM = """
UPDATE jobs SET status = 'running', attempts = attempts + 1, lease = $1,
       run_at = now() + interval '60 seconds'
WHERE id IN (SELECT id FROM jobs WHERE status IN ('queued', 'running') AND run_at <= now()
             AND kind = ANY($2) ORDER BY run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
RETURNING id, kind, payload, attempts, max_attempts
"""
_FINISH = """
UPDATE jobs SET status = 'succeeded', finished_at = now(), lease = NULL, last_error = NULL
WHERE id = $1 AND lease = $2 AND status = 'running'
"""


async def recreate(database_url: str = DATABASE_URL) -> None:
    """Drop and create the database, then migrate it to head (bench.joins uses it too)."""
    from sqlalchemy.engine import make_url

    from core.migrate import upgrade_to_head

    url = make_url(database_url)
    admin = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database="postgres",
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{url.database}"')
    finally:
        await admin.close()
    await asyncio.to_thread(upgrade_to_head, database_url)


async def enqueue(core, count: int) -> None:  # type: ignore[no-untyped-def]
    from core.infra import db

    async with db.database.transaction():
        for _ in range(count):
            await core.jobs.enqueue(KIND, {})


async def service_round(core, count: int) -> float:  # type: ignore[no-untyped-def]
    """Jobs per second of the core's worker running `count` no-op jobs to the end."""
    from core.jobs.worker import Worker

    done = asyncio.Event()
    ran = 0

    async def noop(job) -> None:  # type: ignore[no-untyped-def]
        nonlocal ran
        ran += 1
        if ran == count:
            done.set()

    await enqueue(core, count)
    worker = Worker(
        queue=core.jobs,
        handlers={KIND: noop},
        concurrency=CONCURRENCY,
        poll_seconds=0.05,
        lease_seconds=60,
        grace_seconds=5,
    )
    started = time.perf_counter()
    worker.start()
    await done.wait()
    await worker.drain()  # the last outcomes recorded
    elapsed = time.perf_counter() - started
    await worker.stop()
    return count / elapsed


async def ceiling_round(core, count: int) -> float:  # type: ignore[no-untyped-def]
    """Jobs per second of a bare loop claiming and finishing the same jobs."""
    await enqueue(core, count)
    pool = await asyncpg.create_pool(
        DATABASE_URL, min_size=CONCURRENCY + 1, max_size=CONCURRENCY + 1
    )
    try:
        finished = 0
        started = time.perf_counter()
        while finished < count:
            lease = secrets.token_hex(8)
            claimed = await pool.fetch(_CLAIM, lease, [KIND], CONCURRENCY)
            await asyncio.gather(*(pool.execute(_FINISH, row["id"], lease) for row in claimed))
            finished += len(claimed)
        return count / (time.perf_counter() - started)
    finally:
        await pool.close()


async def main_async(args: argparse.Namespace) -> list[tuple[float, float]]:
    os.environ.update(DATABASE_URL=DATABASE_URL, ENV_FILE="none", LOG_LEVEL="WARNING")
    await recreate()
    from core.container import build_core
    from core.infra import db
    from core.infra.settings import get_settings

    core = build_core(get_settings())
    await core.start()
    pairs = []
    try:
        for n in range(args.rounds):
            order = ("service", "ceiling") if n % 2 == 0 else ("ceiling", "service")
            result = {}
            for which in order:
                round_ = service_round if which == "service" else ceiling_round
                result[which] = await round_(core, args.jobs)
                async with db.database.transaction(), db.database.connection() as connection:
                    await connection.execute(sa.text("DELETE FROM jobs"))
            pairs.append((result["service"], result["ceiling"]))
            print(
                f"round {n + 1}: service {result['service']:.0f} jobs/s, "
                f"ceiling {result['ceiling']:.0f} jobs/s"
            )
    finally:
        await core.stop()
    return pairs


STAMP = "bench.stamp"
WAKEUPS = 20


async def stamp(job) -> None:  # type: ignore[no-untyped-def]
    """Record when this job started (the database's clock, as its `created_at` is the app's,
    on the same machine)."""
    from core.infra import db

    async with db.database.connection() as connection:
        await connection.execute(
            sa.text("INSERT INTO bench_starts (job_id, started_at) VALUES (:j, clock_timestamp())"),
            {"j": job.id},
        )


async def run_worker() -> None:
    """An idle worker of `bench.stamp` jobs, polling every 5 s, until SIGTERM."""
    import signal

    os.environ.update(DATABASE_URL=DATABASE_URL, ENV_FILE="none", LOG_LEVEL="WARNING")
    from core.container import build_core
    from core.infra.settings import get_settings
    from core.jobs.worker import Worker

    core = build_core(get_settings())
    await core.start()
    worker = Worker(queue=core.jobs, handlers={STAMP: stamp}, poll_seconds=5)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    worker.start()
    print("ready", flush=True)
    await stop.wait()
    await worker.stop()
    await core.stop()


async def wakeups() -> list[float]:
    """Milliseconds from each enqueue to its job's start, with two idle worker processes."""
    import sys

    from core.infra import db

    async with db.database.transaction(), db.database.connection() as connection:
        await connection.execute(sa.text("DROP TABLE IF EXISTS bench_starts"))
        await connection.execute(
            sa.text("CREATE TABLE bench_starts (job_id integer, started_at timestamptz)")
        )
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.jobs", "--worker", stdout=asyncio.subprocess.PIPE
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            await worker.stdout.readline()  # "ready"
        await asyncio.sleep(2)  # both listening, both in their 5 s poll
        from core.container import build_core
        from core.infra.db import database
        from core.infra.settings import get_settings

        core = build_core(get_settings())
        for _ in range(WAKEUPS):
            async with database.transaction():  # each enqueue committed alone
                await core.jobs.enqueue(STAMP, {})
            await asyncio.sleep(0.3)
        await asyncio.sleep(1)
        rows = await _started()
    finally:
        for worker in workers:
            worker.terminate()
            await worker.wait()
    return rows


async def _started() -> list[float]:
    from core.infra import db

    async with db.database.connection() as connection:
        rows = (
            await connection.execute(
                sa.text(
                    "SELECT extract(epoch FROM s.started_at - j.created_at) * 1000 "
                    "FROM bench_starts s JOIN jobs j ON j.id = s.job_id"
                )
            )
        ).all()
    return [float(row[0]) for row in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help="(internal) an idle stamp worker")
    args = parser.parse_args()
    if args.worker:
        asyncio.run(run_worker())
        return 0
    pairs = asyncio.run(main_async(args))
    ratio = statistics.median(service / ceiling for service, ceiling in pairs)
    service = statistics.median(s for s, _ in pairs)
    ceiling = statistics.median(c for _, c in pairs)
    held = "held" if ratio >= TARGET else "MISSED"
    print(
        f"\n| one worker, no-op jobs | {service:.0f} jobs/s | ceiling {ceiling:.0f} jobs/s | "
        f"ratio {ratio:.2f} (target {TARGET}) | {held} |"
    )
    latencies = asyncio.run(_wakeups_here())
    woken = statistics.median(latencies)
    print(
        f"| wake-up, two idle workers (poll 5 s) | median {woken:.0f} ms, max "
        f"{max(latencies):.0f} ms over {len(latencies)} jobs | target < 100 ms | "
        f"{'held' if woken < 100 else 'MISSED'} |"
    )
    return 0 if ratio >= TARGET and woken < 100 else 1


async def _wakeups_here() -> list[float]:
    from core.container import build_core
    from core.infra import db
    from core.infra.settings import get_settings

    core = build_core(get_settings())
    await core.start()
    try:
        latencies = await wakeups()
        assert len(latencies) == WAKEUPS, latencies
        async with db.database.transaction(), db.database.connection() as connection:
            await connection.execute(sa.text("DROP TABLE bench_starts"))
        return latencies
    finally:
        await core.stop()


if __name__ == "__main__":
    raise SystemExit(main())
