"""`python -m core.jobs` (`make worker`): a dedicated worker of the core's job kinds.

Run any number of these, on any number of machines, beside the API: they share the queue.
SIGTERM or SIGINT stops claiming, lets running jobs finish for `JOB_GRACE_SECONDS`, and puts
the rest back. Chat messages are not among its kinds: the bot process sends those.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from core.infra.logs import configure_logging
from core.infra.settings import Settings, settings_or_exit

log = logging.getLogger("worker")

# Touched on every round of the worker; `--healthy` (the container's healthcheck) reads it.
HEARTBEAT = Path(
    os.environ.get("WORKER_HEARTBEAT_FILE") or Path(tempfile.gettempdir()) / "worker-heartbeat"
)
STALE_SECONDS = 90.0


def beat() -> None:
    with contextlib.suppress(OSError):
        HEARTBEAT.touch()


def is_fresh() -> bool:
    try:
        return time.time() - HEARTBEAT.stat().st_mtime < STALE_SECONDS
    except OSError:
        return False


async def run(settings: Settings, *, once: bool = False) -> int:
    from core.container import build_core

    core = build_core(settings)
    await core.start()
    worker = core.worker()
    worker.beat = beat
    try:
        if once:
            return await worker.run_due()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        worker.start()
        await stop.wait()
        log.info("stopping: running jobs finish or go back to the queue")
        await worker.stop()
        return 0
    finally:
        await core.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.jobs", description=__doc__)
    parser.add_argument("--once", action="store_true", help="run what is due now, then exit")
    parser.add_argument(
        "--healthy", action="store_true", help="exit 0 while a running worker is making rounds"
    )
    args = parser.parse_args(argv)
    if args.healthy:
        return 0 if is_fresh() else 1
    settings = settings_or_exit("worker")
    configure_logging(settings)
    ran = asyncio.run(run(settings, once=args.once))
    if args.once:
        print(f"ran {ran} jobs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
