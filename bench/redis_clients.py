"""The cache hit's Redis read through three clients, in one process and one run:

- redis-py with its pure-Python parser (what redis-py does without hiredis),
- redis-py with hiredis (the C parser: `make bench` installs it apart, for this run only —
  the service does not use it, see bench/RESULTS.md),
- core/infra/redispipe.py (one pipelined connection, its own small RESP reader).

    .venv/bin/pip install --target /tmp/bench-hiredis hiredis==3.5.0
    PYTHONPATH=/tmp/bench-hiredis .venv/bin/python -m bench.redis_clients [--seconds 5] [--tasks 32]

Each client answers `GET` of a cached view's size (~120 bytes) from `--tasks` concurrent
tasks for `--seconds`; the clients alternate in each round; the figure is the median of the
rounds' calls per second. The event loop is uvloop's, as the service's is. Also part `redis`
of `make bench` (bench/run.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
import uvloop
from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser

from core.infra.redispipe import RedisPipe

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
KEY = "bench:redis-clients"
VALUE = b"1893456000\n" + b'{"code":"Xk3_9aQpL2mz","expires_at":"2030-01-01T00:00:00Z"}' * 2


@dataclass
class Client:
    name: str
    get: Callable[[str], Awaitable[object]]
    close: Callable[[], Awaitable[None]]


def clients(url: str) -> list[Client]:
    pure = aioredis.Redis.from_url(url, parser_class=_AsyncRESP2Parser, max_connections=64)
    fast = aioredis.Redis.from_url(url, parser_class=_AsyncHiredisParser, max_connections=64)
    pipe = RedisPipe(url, timeout=2.0)
    return [
        Client("redis-py, pure-Python parser", pure.get, pure.aclose),
        Client("redis-py + hiredis", fast.get, fast.aclose),
        Client(
            "redispipe (core/infra/redispipe.py)", lambda key: pipe.call("GET", key), pipe.close
        ),
    ]


async def _rate(client: Client, *, seconds: float, tasks: int) -> float:
    calls = 0
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal calls
        while time.perf_counter() < stop:
            value = await client.get(KEY)
            assert value == VALUE
            calls += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(tasks)))
    return calls / (time.perf_counter() - started)


async def measure(
    *, url: str = REDIS_URL, seconds: float, rounds: int, tasks: int
) -> dict[str, float]:
    """Median calls per second of each client."""
    setup = aioredis.Redis.from_url(url)
    await setup.set(KEY, VALUE)
    await setup.aclose()
    chosen = clients(url)
    for client in chosen:  # connect and warm up
        await _rate(client, seconds=0.3, tasks=tasks)
    rates: dict[str, list[float]] = {c.name: [] for c in chosen}
    for round_ in range(rounds):
        order = chosen if round_ % 2 == 0 else list(reversed(chosen))
        for client in order:
            rates[client.name].append(await _rate(client, seconds=seconds, tasks=tasks))
    for client in chosen:
        await client.close()
    return {name: statistics.median(values) for name, values in rates.items()}


def run(*, seconds: float, rounds: int, tasks: int, url: str = REDIS_URL) -> dict[str, float]:
    return uvloop.run(measure(url=url, seconds=seconds, rounds=rounds, tasks=tasks))


PIPE = "redispipe (core/infra/redispipe.py)"
HIREDIS = "redis-py + hiredis"
# The pipe stays only while it beats redis-py with hiredis by at least this much.
PIPE_TARGET = 1.2


def table(rates: dict[str, float], tasks: int) -> tuple[str, bool]:
    base = rates[HIREDIS]
    held = rates[PIPE] / base >= PIPE_TARGET
    lines = [
        f"| client ({tasks} tasks) | GET/s | vs redis-py + hiredis |",
        "|---|---:|---:|",
        *(f"| {name} | {rate:,.0f} | {rate / base:.2f} |" for name, rate in rates.items()),
        "",
        f"The pipe against redis-py + hiredis: {rates[PIPE] / base:.2f}x "
        f"(target >= {PIPE_TARGET}: {'held' if held else '**MISSED**'}).",
    ]
    return "\n".join(lines), held


def main() -> None:
    """Prints the table; exits 1 when the pipe's target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=32)
    args = parser.parse_args()
    text, held = table(run(seconds=args.seconds, rounds=args.rounds, tasks=args.tasks), args.tasks)
    print(text)
    raise SystemExit(0 if held else 1)


if __name__ == "__main__":
    main()
