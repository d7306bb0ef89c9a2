"""Looking at the job queue from tests."""

from __future__ import annotations

from core.jobs.models import Job
from core.telegram.service import TELEGRAM_MESSAGE


async def jobs_of(kind: str) -> list[Job]:
    return await Job.objects.filter(kind=kind).order_by("id").all()


async def chat_messages() -> list[Job]:
    """The queued (or sent) chat messages, oldest first."""
    return await jobs_of(TELEGRAM_MESSAGE)
