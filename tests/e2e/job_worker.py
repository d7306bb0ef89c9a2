"""`python -m tests.e2e.job_worker`: a worker process for the job tests.

The core's own job kinds, and two that record each run in `test_job_runs` (a table the test
creates): `test.record` runs at once, `test.slow` hangs on its first attempt (to be killed).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import sqlalchemy as sa

from core.container import build_core
from core.infra.db import database
from core.infra.settings import get_settings
from core.jobs.queue import ClaimedJob


async def _note(job: ClaimedJob, phase: str) -> None:
    async with database.transaction(), database.connection() as connection:
        await connection.execute(
            sa.text(
                "INSERT INTO test_job_runs (job_id, attempt, pid, phase) VALUES (:j, :a, :p, :f)"
            ),
            {"j": job.id, "a": job.attempt, "p": os.getpid(), "f": phase},
        )


async def record(job: ClaimedJob) -> None:
    await _note(job, "done")


async def slow(job: ClaimedJob) -> None:
    await _note(job, "started")
    if job.attempt == 1:
        await asyncio.Event().wait()  # never set: the test kills this process here
    await _note(job, "done")


async def main() -> None:
    core = build_core(get_settings())
    await core.start()
    worker = core.worker({**core.handlers(), "test.record": record, "test.slow": slow})
    stop = asyncio.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(number, stop.set)
    worker.start()
    print("ready", flush=True)
    await stop.wait()
    await worker.stop()
    await core.stop()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
