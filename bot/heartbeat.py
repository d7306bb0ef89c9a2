"""A liveness file for the bot: touched by its background loop, checked by the container's
healthcheck (`python -m bot.heartbeat` exits 0 while it is fresh). Long polling serves no HTTP,
so a file is what a healthcheck can read."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

PATH = Path(os.environ.get("BOT_HEARTBEAT_FILE") or Path(tempfile.gettempdir()) / "bot-heartbeat")
STALE_SECONDS = 90.0


def beat() -> None:
    with contextlib.suppress(OSError):  # a read-only file system: the healthcheck reports it
        PATH.touch()


def is_fresh() -> bool:
    try:
        return time.time() - PATH.stat().st_mtime < STALE_SECONDS
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(0 if is_fresh() else 1)
