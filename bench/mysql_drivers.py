"""The MariaDB/MySQL driver, chosen on a measurement: asyncmy against aiomysql, in one run.

    .venv/bin/pip install --target /tmp/bench-mysql aiomysql==0.3.2   # asyncmy is the lock's
    PYTHONPATH=/tmp/bench-mysql .venv/bin/python -m bench.mysql_drivers [--seconds 5]

Each driver answers the shape of the service's hot read (one row by primary key, the columns
`/users/me` reads) from 32 concurrent tasks over a pool of 8 connections, for `--seconds`,
twice: on the driver's own pool (the shortest path a hot read could take) and through
SQLAlchemy's async engine (what every statement takes on MySQL). The drivers alternate in
each round; the figure is the median of the rounds. BENCH_MYSQL_URL (default
mysql://root@127.0.0.1:3306/referral_bench_drivers, created and filled here).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

URL = os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/referral_bench_drivers")
ROWS = 10_000
POOL = 8
TASKS = 32
SQL = "SELECT id, email, full_name, created_at FROM bench_users WHERE id = %s"


async def _prepare(url: sa.URL) -> None:
    engine = create_async_engine(url.set(drivername="mysql+asyncmy")._replace(database=None))
    async with engine.begin() as connection:
        await connection.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {url.database}")
        await connection.exec_driver_sql(f"USE {url.database}")
        await connection.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS bench_users (id INT PRIMARY KEY, email VARCHAR(320),"
            " full_name VARCHAR(100), created_at DATETIME(6)) CHARACTER SET utf8mb4"
        )
        if (await connection.exec_driver_sql("SELECT COUNT(*) FROM bench_users")).scalar() == 0:
            await connection.exec_driver_sql(
                "INSERT INTO bench_users VALUES (%s, %s, %s, NOW(6))",
                [(i, f"user{i}@example.com", f"User {i}") for i in range(1, ROWS + 1)],
            )
    await engine.dispose()


async def _rate(call: Callable[[int], Awaitable[object]], seconds: float) -> float:
    calls = 0
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal calls
        while time.perf_counter() < stop:
            await call(random.randint(1, ROWS))
            calls += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(TASKS)))
    return calls / (time.perf_counter() - started)


async def _raw(driver: str, url: sa.URL) -> tuple[Callable[[int], Awaitable[object]], Any]:
    options = {
        "host": url.host,
        "port": url.port or 3306,
        "user": url.username,
        "password": url.password or "",
        "db": url.database,
        "minsize": POOL,
        "maxsize": POOL,
        "autocommit": True,
    }
    if driver == "asyncmy":
        import asyncmy

        pool = await asyncmy.create_pool(**options)
    else:
        import aiomysql

        pool = await aiomysql.create_pool(**options)

    async def call(user_id: int) -> object:
        async with pool.acquire() as connection, connection.cursor() as cursor:
            await cursor.execute(SQL, (user_id,))
            return await cursor.fetchone()

    async def close() -> None:
        pool.close()
        await pool.wait_closed()

    return call, close


async def _engine(driver: str, url: sa.URL) -> tuple[Callable[[int], Awaitable[object]], Any]:
    engine = create_async_engine(
        url.set(drivername=f"mysql+{driver}"), pool_size=POOL, max_overflow=0
    )
    statement = sa.text(SQL.replace("%s", ":id"))

    async def call(user_id: int) -> object:
        async with engine.connect() as connection:
            return (await connection.execute(statement, {"id": user_id})).first()

    return call, engine.dispose


async def measure(seconds: float, rounds: int) -> dict[str, float]:
    url = make_url(URL)
    await _prepare(url)
    rates: dict[str, list[float]] = {}
    ways = [
        (f"{d}, {name}", d, make)
        for name, make in (("own pool", _raw), ("SQLAlchemy", _engine))
        for d in ("asyncmy", "aiomysql")
    ]
    for round_ in range(rounds):
        for label, driver, make in ways if round_ % 2 == 0 else list(reversed(ways)):
            call, close = await make(driver, url)
            await _rate(call, 0.3)  # warm the pool
            rates.setdefault(label, []).append(await _rate(call, seconds))
            await close()
    return {label: statistics.median(values) for label, values in rates.items()}


def table(rates: dict[str, float]) -> str:
    lines = ["| driver, path | reads/s |", "|---|---:|"]
    lines += [f"| {label} | {rate:,.0f} |" for label, rate in rates.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(table(asyncio.run(measure(args.seconds, args.rounds))))


if __name__ == "__main__":
    main()
