"""Worker processes sharing one queue on PostgreSQL: exactly once when nothing fails, nothing
lost when a worker is killed (SIGKILL), deliveries of a burst made during an outage."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import IO

import pytest
import sqlalchemy as sa

from core.container import Core
from core.infra import db
from core.jobs.models import Job
from core.operators.service import Operator
from core.webhooks.models import WebhookDelivery
from tests.conftest import BACKEND, PASSWORD, SERVERS
from tests.e2e.conftest import ROOT
from tests.integrations.conftest import eventually
from tests.jobs import enqueue
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.skipif(
    BACKEND not in SERVERS,
    reason="several worker processes share a queue on a database server (make test-services, "
    "make test-mariadb); SQLite's single writer is the one-process embedded default",
)


class WorkerProcess:
    def __init__(self, **env: str) -> None:
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.job_worker"],
            cwd=ROOT,
            env={
                **os.environ,
                "JOB_POLL_SECONDS": "0.1",
                "JOB_LEASE_SECONDS": "3",
                # The lease outlasts every attempt twice over (the settings refuse less).
                "WEBHOOK_TIMEOUT_SECONDS": "1",
                "SMTP_TIMEOUT_SECONDS": "1",
                "INTEGRATIONS_TIMEOUT_SECONDS": "0.5",
                "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
                **env,
            },
            stdout=self._log,
            stderr=self._log,
        )

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    async def ready(self, within: float = 30) -> None:
        def started() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"the worker exited:\n{self.output()}")
            return "ready" in self.output()

        await eventually(started, within=within)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        output = self.output()
        self._log.close()
        return output


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        output = worker.stop()
        assert "Traceback" not in output, output


@pytest.fixture
async def runs(core: Core) -> AsyncIterator[None]:
    async with db.database.transaction(), db.database.connection() as connection:
        await connection.execute(
            sa.text(
                "CREATE TABLE IF NOT EXISTS test_job_runs "
                "(job_id integer, attempt integer, pid integer, phase text)"
            )
        )
        await connection.execute(sa.text("DELETE FROM test_job_runs"))
    yield
    async with db.database.transaction(), db.database.connection() as connection:
        await connection.execute(sa.text("DROP TABLE test_job_runs"))


async def _rows(sql: str) -> list:
    async with db.database.connection() as connection:
        return list((await connection.execute(sa.text(sql))).all())


async def test_three_workers_run_each_of_a_thousand_jobs_exactly_once(
    core: Core, runs: None, workers: list[WorkerProcess]
) -> None:
    workers += [WorkerProcess() for _ in range(3)]
    for worker in workers:
        await worker.ready()
    async with db.database.transaction():
        for _ in range(1000):
            await core.jobs.enqueue("test.record", {})

    async def finished() -> bool:
        return await Job.objects.filter(status="succeeded").count() == 1000

    await eventually(finished, within=120)
    per_job = await _rows("SELECT job_id, count(*) FROM test_job_runs GROUP BY job_id")
    assert len(per_job) == 1000
    assert {count for _, count in per_job} == {1}
    pids = {pid for (pid,) in await _rows("SELECT DISTINCT pid FROM test_job_runs")}
    assert pids == {worker.process.pid for worker in workers}  # all three took a share
    assert {job.attempts for job in await Job.objects.all()} == {1}


async def test_a_job_whose_worker_was_killed_runs_again_once_the_lease_ends(
    core: Core, runs: None, workers: list[WorkerProcess]
) -> None:
    first = WorkerProcess()
    workers.append(first)
    await first.ready()
    job_id = await enqueue(core.jobs, "test.slow", {})

    async def started() -> bool:
        return bool(await _rows("SELECT 1 FROM test_job_runs WHERE phase = 'started'"))

    await eventually(started, within=30)
    first.kill()  # SIGKILL mid-job: no chance to put it back
    (job,) = await Job.objects.all()
    assert (job.status, job.attempts) == ("running", 1)

    second = WorkerProcess()
    workers.append(second)
    await second.ready()

    async def finished() -> bool:
        return (await Job.objects.get(id=job_id)).status == "succeeded"

    await eventually(finished, within=30)
    job = await Job.objects.get(id=job_id)
    assert job.attempts == 2
    assert await _rows("SELECT attempt, pid, phase FROM test_job_runs ORDER BY attempt, phase") == [
        (1, first.process.pid, "started"),
        (2, second.process.pid, "done"),
        (2, second.process.pid, "started"),
    ]


async def test_a_burst_of_sign_ups_during_a_worker_outage_is_delivered_after_it(
    core: Core, runs: None, workers: list[WorkerProcess]
) -> None:
    receiver = Receiver()
    await receiver.start()
    try:
        endpoint = await core.webhooks.create(
            operator=Operator(), url=receiver.url, events=["user.created"], description=None
        )
        receiver.secrets = [endpoint.secret]
        # No worker runs: the sign-ups commit their deliveries and answer at once.
        for n in range(40):
            await core.accounts.sign_up(email=f"user{n}@example.com", password=PASSWORD)
        assert await WebhookDelivery.objects.filter(status="pending").count() == 40
        assert receiver.received == []

        # One worker comes back and is killed mid-way; another finishes the rest.
        receiver.hold = asyncio.Event()  # answers wait: deliveries stay in flight
        first = WorkerProcess(JOB_CONCURRENCY="4")
        workers.append(first)
        await first.ready()
        await receiver.wait_for(lambda got: len(got) >= 4)
        first.kill()
        receiver.hold.set()
        receiver.hold = None
        second = WorkerProcess()
        workers.append(second)
        await second.ready()

        async def delivered() -> bool:
            return await WebhookDelivery.objects.filter(status="succeeded").count() == 40

        await eventually(delivered, within=60)
        ids = [item.message_id for item in receiver.received]
        assert len(set(ids)) == 40  # every one arrived
        # At least once: only what was in flight when the worker died came twice.
        assert len(ids) - len(set(ids)) <= 4
        assert all(item.verified for item in receiver.received)
        emails = {item.payload["data"]["email"] for item in receiver.received}
        assert emails == {f"user{n}@example.com" for n in range(40)}
    finally:
        await receiver.stop()


async def test_sigterm_lets_the_worker_put_a_running_job_back(
    core: Core, runs: None, workers: list[WorkerProcess]
) -> None:
    worker = WorkerProcess(JOB_GRACE_SECONDS="0.5")
    workers.append(worker)
    await worker.ready()
    job_id = await enqueue(core.jobs, "test.slow", {})

    async def started() -> bool:
        return bool(await _rows("SELECT 1 FROM test_job_runs WHERE phase = 'started'"))

    await eventually(started, within=30)
    worker.process.terminate()
    assert worker.process.wait(timeout=20) == 0

    job = await Job.objects.get(id=job_id)
    # The grace period passed with the job still running: it is back, due at once, and its
    # cut-short attempt is not counted.
    assert (job.status, job.attempts, job.lease) == ("queued", 0, None)


@pytest.mark.skipif(BACKEND != "services", reason="PostgreSQL's NOTIFY: MySQL has none, polls")
async def test_an_enqueue_wakes_idle_workers_of_other_processes(
    core: Core, runs: None, workers: list[WorkerProcess]
) -> None:
    """Two idle workers that poll only once a minute: each job still starts at once, woken by
    the enqueue's NOTIFY; after the listening connection is cut they listen again."""
    workers += [WorkerProcess(JOB_POLL_SECONDS="60") for _ in range(2)]
    for worker in workers:
        await worker.ready()

    async def listening() -> bool:
        rows = await _rows(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %jobs_enqueued%'"
        )
        return bool(rows[0][0] == 2)

    await eventually(listening, within=30)

    async def run_one() -> None:
        done = await Job.objects.filter(status="succeeded").count()
        await enqueue(core.jobs, "test.record", {})

        async def finished() -> bool:
            return await Job.objects.filter(status="succeeded").count() == done + 1

        await eventually(finished, within=20)  # a third of one poll interval

    for _ in range(5):
        await run_one()
    await _rows(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE query LIKE 'LISTEN %jobs_enqueued%'"
    )
    await eventually(listening, within=30)
    for _ in range(3):
        await run_one()
    assert len(await _rows("SELECT job_id FROM test_job_runs")) == 8
