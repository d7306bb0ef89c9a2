"""Liveness and readiness."""

from __future__ import annotations

import pytest


async def test_live(client):
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_the_database_answers(client):
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "ok"}


async def test_ready_is_503_when_the_database_does_not_answer(
    client, core, monkeypatch: pytest.MonkeyPatch
):
    async def database_down() -> bool:
        return False

    monkeypatch.setattr(core, "database_ok", database_down)
    response = await client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] != "ok"
    assert body["status"] != "ok"
    # The process itself is still alive.
    assert (await client.get("/health/live")).status_code == 200


async def test_database_check_reports_a_failing_connection(core, monkeypatch: pytest.MonkeyPatch):
    """`database_ok` turns a broken connection into False rather than raising."""
    from core import db

    class Broken:
        def connection(self):
            raise ConnectionRefusedError("database is down")

    monkeypatch.setattr(db, "database", Broken())
    assert await core.database_ok() is False
