"""Explicit wiring: an app is built from the Settings handed to it, nothing from import time."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import httpx
    from asgi_lifespan import LifespanManager
    from api.main import create_app
    from core.migrate import upgrade_to_head
    from core.infra.settings import Settings

    url = "sqlite:///" + sys.argv[1]
    upgrade_to_head(url)
    settings = Settings(database_url=url, environment="test", RATE_LIMIT_ENABLED=False)

    async def main():
        app = create_app(settings)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                body = {"email": "ann@example.com", "password": "long enough pw"}
                created = await http.post("/api/v1/auth/register", json=body)
                ready = await http.get("/health/ready")
        print(created.status_code, ready.status_code)

    asyncio.run(main())
    """
)


def test_an_app_on_a_database_named_only_in_its_settings(tmp_path: Path) -> None:
    """No DATABASE_URL in the environment: the file named in Settings is the one used."""
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    database = tmp_path / "elsewhere.db"
    # A fresh process: this one's database is already connected.
    done = subprocess.run(  # noqa: S603 (our own interpreter and script)
        [sys.executable, "-c", SCRIPT, str(database)],
        cwd=ROOT,
        env={**env, "ENV_FILE": "none"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["201", "200"]
    assert database.exists()
