from __future__ import annotations

import datetime as dt
from typing import Any

import ormar
import sqlalchemy as sa

from core.infra import clock
from core.infra.db import UTCDateTime, base_config

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
UNFINISHED = (QUEUED, RUNNING)
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED)
UNFINISHED_SQL = sa.text("status IN ('queued', 'running')")


class Job(ormar.Model):
    """A unit of background work, written in the transaction of the change that causes it.

    `run_at` is when the job is next due: for a queued job the start of its next attempt,
    for a running one the end of its worker's lease. Either way a job whose `run_at` has
    passed may be claimed, so a job whose worker died runs again once the lease ends.
    """

    ormar_config = base_config.copy(
        tablename="jobs",
        constraints=[
            # The claim reads only unfinished jobs, the earliest due first.
            ormar.IndexColumns(
                "run_at",
                "id",
                name="ix_jobs_due",
                postgresql_where=UNFINISHED_SQL,
                sqlite_where=UNFINISHED_SQL,
            ),
            # The clean-up removes finished jobs past their retention.
            ormar.IndexColumns("finished_at", name="ix_jobs_finished_at"),
        ],
    )

    id: int = ormar.Integer(primary_key=True)
    kind: str = ormar.String(max_length=64)
    payload: dict[str, Any] = ormar.JSON(default=dict)
    status: str = ormar.String(max_length=16, default=QUEUED, nullable=False)
    attempts: int = ormar.Integer(default=0, server_default=sa.text("0"), nullable=False)
    max_attempts: int = ormar.Integer(nullable=False)
    run_at: dt.datetime = UTCDateTime(default=clock.utcnow, nullable=False)
    # Set by each claim: only the worker holding it may finish the job.
    lease: str | None = ormar.String(max_length=32, nullable=True)
    last_error: str | None = ormar.String(max_length=500, nullable=True)
    created_at: dt.datetime = UTCDateTime(default=clock.utcnow, nullable=False)
    finished_at: dt.datetime | None = UTCDateTime(nullable=True)
