"""Several worker processes (WEB_CONCURRENCY) behind one port, with one /metrics for all."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from api.main import check_workers
from core.settings import Settings
from tests.e2e.conftest import Server, running
from tests.redis_server import RedisServer

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
