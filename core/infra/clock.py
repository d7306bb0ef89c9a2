"""The one clock of the service. Tests move it with `shift`; nothing else reads the time."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager

_offset = 0.0


def utcnow() -> dt.datetime:
    now = dt.datetime.now(dt.UTC)
    return now + dt.timedelta(seconds=_offset) if _offset else now


def timestamp() -> float:
    """Seconds since the epoch, on the same clock as `utcnow`."""
    return time.time() + _offset


@contextmanager
def shift(delta: dt.timedelta) -> Iterator[None]:
    """Run a block as if `delta` had passed (tests only)."""
    global _offset
    previous = _offset
    _offset = previous + delta.total_seconds()
    try:
        yield
    finally:
        _offset = previous
