"""Serve the fake Hunter and Clearbit for a manual run of the API:

    .venv/bin/python -m tests.fakes   # prints the .env lines that point the API at them

Behaviour per address tag: `ann+undeliverable@example.com` (Hunter: deliverable,
undeliverable, risky, unknown, slow, pending, 500, 503, 429, garbage) and
`ann+404@example.com` (Clearbit: found, company-only, empty, 404, 202, 500, 429, 422, garbage);
an untagged address is deliverable and found.
"""

from __future__ import annotations

import argparse
import asyncio

from tests.fakes import clearbit, hunter
from tests.fakes.clearbit import FakeClearbit
from tests.fakes.hunter import FakeHunter


async def serve(hunter_port: int, clearbit_port: int) -> None:
    fake_hunter, fake_clearbit = fakes = (FakeHunter(), FakeClearbit())
    await fake_hunter.start(hunter_port)
    await fake_clearbit.start(clearbit_port)
    print(f"HUNTER_API_KEY={hunter.API_KEY}")
    print(f"HUNTER_BASE_URL={fake_hunter.url}")
    print(f"CLEARBIT_API_KEY={clearbit.API_KEY}")
    print(f"CLEARBIT_BASE_URL={fake_clearbit.url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        for fake in fakes:
            await fake.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hunter-port", type=int, default=8025)
    parser.add_argument("--clearbit-port", type=int, default=8026)
    arguments = parser.parse_args()
    asyncio.run(serve(arguments.hunter_port, arguments.clearbit_port))
