"""Liveness and readiness."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from core.infra import clock
from tests.conftest import reset_state
from tests.jobs import enqueue


async def test_live(client):
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_the_database_answers(client):
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "cache": "ok",
        "jobs": {"oldest_due_seconds": 0.0},
    }


async def test_jobs_that_wait_without_a_worker_show_in_ready_and_metrics(client, core):
    """Nothing runs jobs here (as on PostgreSQL without `make worker`): the wait shows."""
    await enqueue(core.jobs, "mail", {})
    with clock.shift(dt.timedelta(minutes=5)):
        body = (await client.get("/health/ready")).json()
        metrics = (await client.get("/metrics")).text
    assert 299 <= body["jobs"]["oldest_due_seconds"] <= 301
    (line,) = [line for line in metrics.splitlines() if line.startswith("jobs_oldest_due")]
    assert 299 <= float(line.split()[1]) <= 301
    # A job not yet due is not waiting.
    await reset_state(core)
    await enqueue(core.jobs, "mail", {}, delay=3600)
    assert (await client.get("/health/ready")).json()["jobs"] == {"oldest_due_seconds": 0.0}


async def test_ready_is_503_when_the_database_does_not_answer(
    client, core, monkeypatch: pytest.MonkeyPatch
):
    async def database_down() -> None:
        return None

    monkeypatch.setattr(core, "oldest_due_job", database_down)
    response = await client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] != "ok"
    assert body["status"] != "ok"
    assert body["jobs"] is None
    # The process itself is still alive.
    assert (await client.get("/health/live")).status_code == 200


async def test_database_check_reports_a_failing_connection(core, monkeypatch: pytest.MonkeyPatch):
    """`database_ok` turns a broken connection into False rather than raising."""

    class Broken:
        def connection(self):
            raise ConnectionRefusedError("database is down")

    monkeypatch.setattr("core.jobs.queue.database", Broken())
    assert await core.database_ok() is False
    assert await core.oldest_due_job() is None


async def test_an_api_process_without_a_worker_says_so_at_start(
    settings, caplog: pytest.LogCaptureFixture
) -> None:
    from asgi_lifespan import LifespanManager

    from api.main import create_app
    from core.container import build_core

    assert settings.jobs.in_process == "false"  # as on PostgreSQL by default
    with caplog.at_level(logging.WARNING, logger="api.main"):
        async with LifespanManager(create_app(settings, core=build_core(settings))):
            pass
    (record,) = [r for r in caplog.records if "runs no job worker" in r.getMessage()]
    assert "make worker" in record.getMessage()
