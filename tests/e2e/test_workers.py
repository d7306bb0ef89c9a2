"""Several worker processes (WEB_CONCURRENCY) behind one port, with one /metrics for all."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from api.main import check_workers
from core.infra.settings import Settings
from core.migrate import upgrade_to_head
from tests.e2e.conftest import ROOT, Server, running
from tests.redis_server import RedisServer, free_port

REQUESTS = 60
SERIES = re.compile(
    r'^http_requests_total\{method="GET",route="/health/live",status="200"\} ([\d.e+]+)$', re.M
)


async def test_metrics_count_every_workers_requests(tmp_path: Path) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    redis = RedisServer()  # several workers share their cache and counters in Redis
    await redis.start()
    try:
        server = Server(
            WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(shared), REDIS_URL=redis.url
        )
        with running(server):
            for _ in range(REQUESTS):  # a new connection each: the workers take turns
                async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
                    assert (await http.get("/health/live")).status_code == 200
            # Both workers counted into the shared directory...
            writers = {re.sub(r"\D", "", path.name) for path in shared.glob("counter_*.db")}
            assert len(writers) == 2, sorted(shared.iterdir())
            # ...and whichever worker answers /metrics reports the sum of both.
            for _ in range(4):
                async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
                    found = SERIES.search((await http.get("/metrics")).text)
                assert found is not None
                assert float(found.group(1)) >= REQUESTS
    finally:
        await redis.stop()


def _start(tmp_path: Path, **env: str | None) -> subprocess.CompletedProcess[str]:
    """`python -m api` as `make run` starts it, expected to refuse (it is stopped after 60 s
    otherwise, and the test fails on its output)."""
    environment = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    for name, value in env.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return subprocess.run(  # noqa: S603 (our own interpreter)
        [sys.executable, "-m", "api", "--port", str(free_port())],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_start_that_cannot_work_is_refused_once_in_one_line(tmp_path: Path) -> None:
    for env, message in (
        (
            {"WEB_CONCURRENCY": "2", "REDIS_URL": None},
            "api: WEB_CONCURRENCY=2 needs REDIS_URL",
        ),
        ({"WEB_CONCURRENCY": "many"}, "api: WEB_CONCURRENCY='many' is not a number"),
        (
            {"ENVIRONMENT": "production", "SECRET_KEY": None, "PUBLIC_BASE_URL": "https://x.io"},
            "api: SECRET_KEY must be set to a random value",
        ),
        (
            {"ENVIRONMENT": "production", "PUBLIC_BASE_URL": None},
            "api: PUBLIC_BASE_URL must be set in production",
        ),
        ({"JOB_LEASE_SECONDS": "5"}, "api: JOB_LEASE_SECONDS=5 must be at least twice"),
    ):
        done = _start(tmp_path, **env)
        assert done.returncode == 2, (env, done.stdout, done.stderr)
        assert done.stderr.startswith(message), done.stderr
        assert done.stderr.count("\n") == 1, done.stderr  # one line, no traceback


async def test_workers_share_one_development_secret_kept_beside_the_database(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    """No SECRET_KEY in development: every worker signs with the same secret, made once and
    kept beside the SQLite file, so a token is good on any worker and after a restart."""
    database = tmp_path / "dev" / "referrals.db"
    await asyncio.to_thread(upgrade_to_head, f"sqlite:///{database}")
    env = {
        "ENVIRONMENT": "development",
        "SECRET_KEY": None,
        "DATABASE_URL": f"sqlite:///{database}",
        "WEB_CONCURRENCY": "2",
        "REDIS_URL": own_redis.url,
        "JOBS_IN_PROCESS": "false",
    }
    server = Server(**env)
    with running(server):
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            body = {"email": "ann@example.com", "password": "a long password"}
            assert (await http.post("/api/v1/auth/register", json=body)).status_code == 201
            form = {"username": "ann@example.com", "password": "a long password"}
            token = (await http.post("/api/v1/auth/token", data=form)).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        statuses = set()
        for _ in range(40):  # a new connection each: the workers take turns
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
                statuses.add((await http.get("/api/v1/users/me", headers=headers)).status_code)
        assert statuses == {200}
    kept = database.parent / ".development-secret-key"
    assert len(kept.read_text()) >= 32
    assert kept.stat().st_mode & 0o077 == 0  # readable by its owner only

    again = Server(**{**env, "WEB_CONCURRENCY": "1", "REDIS_URL": None})
    with running(again):
        async with httpx.AsyncClient(base_url=again.base_url, timeout=10) as http:
            assert (await http.get("/api/v1/users/me", headers=headers)).status_code == 200


def test_several_workers_without_redis_refuse_to_start(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    alone = settings.model_copy(update={"redis_url": None})
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    with pytest.raises(RuntimeError, match="WEB_CONCURRENCY=2 needs REDIS_URL"):
        check_workers(alone)
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    check_workers(alone)  # one worker keeps its own cache: fine
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    check_workers(settings.model_copy(update={"redis_url": "redis://127.0.0.1:6379/0"}))
