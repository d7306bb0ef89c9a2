"""Link opens (`/start <code>`, the landing page): counted in memory, written in batches.

No write per open: a process adds up what it saw and writes the sums every
`LINK_OPENS_FLUSH_SECONDS` (and when it stops). A process that dies loses its last seconds of
opens; a batch is taken out before it is written, so no open is ever counted twice. One
visitor (a client address, a Telegram user) opening one code counts once per
`LINK_OPEN_REPEAT_SECONDS`, so a loop cannot inflate the count: the repeats are told apart by
counters in Redis when it is configured (every process agrees), else in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter

from sqlalchemy.exc import IntegrityError

from core.infra import clock
from core.infra.ratelimit import Counters, Limit, Rate
from core.program.stats import ProgramStats

log = logging.getLogger(__name__)


class LinkOpens:
    def __init__(
        self,
        *,
        stats: ProgramStats,
        flush_seconds: float,
        repeats: Counters,
        repeat_seconds: int,
    ) -> None:
        self.stats = stats
        self.flush_seconds = flush_seconds
        self._repeats = repeats
        self._once = Limit("link_open", Rate(count=1, seconds=repeat_seconds))
        self._pending: Counter[tuple[int, str]] = Counter()  # (referrer, campaign key)
        self._task: asyncio.Task[None] | None = None

    async def record(self, referrer_id: int, *, campaign: str, visitor: str, code: str) -> None:
        """Count `visitor`'s opening of `code` (of `campaign`, a key), unless they opened it
        within the window."""
        now_ms = int(clock.timestamp() * 1000)
        if await self._repeats.acquire(((self._once, f"{visitor}|{code}"),), now_ms):
            return
        self._pending[(referrer_id, campaign)] += 1

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="link-opens")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()

    async def close(self) -> None:
        await self._repeats.close()

    async def flush(self) -> None:
        batch, self._pending = self._pending, Counter()
        if not batch:
            return
        try:
            await self.stats.add_link_opens(dict(batch))
        except IntegrityError:  # a referrer that no longer exists: nothing to count for
            log.warning("dropped %d link opens of referrers now gone", sum(batch.values()))
        except Exception as exc:  # the database is away: kept for the next round
            log.warning("could not write %d link opens: %s", sum(batch.values()), exc)
            self._pending.update(batch)

    def forget(self) -> None:
        """Drop what was counted and not written (tests, between cases)."""
        self._pending.clear()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            await self.flush()
