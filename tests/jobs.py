"""Looking at the job queue from tests."""

from __future__ import annotations

from typing import Any

from core.infra.db import database
from core.jobs.models import Job
from core.jobs.queue import JobQueue
from core.telegram.service import TELEGRAM_MESSAGE


async def jobs_of(kind: str) -> list[Job]:
    return await Job.objects.filter(kind=kind).order_by("id").all()


async def chat_messages() -> list[Job]:
    """The queued (or sent) chat messages, oldest first."""
    return await jobs_of(TELEGRAM_MESSAGE)


async def enqueue(queue: JobQueue, kind: str, payload: dict[str, Any], **options: Any) -> int:
    """A job queued on its own (the core queues jobs inside the change that asks for them)."""
    async with database.transaction():
        return await queue.enqueue(kind, payload, **options)
