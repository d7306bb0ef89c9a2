"""A real service for the end-to-end tests: uvicorn in a subprocess, on a free local port.

The environment tests/conftest.py prepared (database, cache, secret, bot username, limits
off) is the server's too, so the server and the tests share one migrated database. The
module's tests share a few accounts (argon2 makes every sign-up and sign-in cost), so the
database is emptied once, after the module, rather than after each test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.sql.expression import Executable

from core.infra import db
from core.models import User
from tests.conftest import emptying_statements

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """`python -m api` in a subprocess; `wait()` returns once /health/live answers."""

    def __init__(self, port: int | None = None, **env_overrides: str | None) -> None:
        env = dict(os.environ)
        for name, value in env_overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        port = port or _free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        # What `make run` starts: the settings checked, then uvicorn.
        command = [sys.executable, "-m", "api", "--host", "127.0.0.1", "--port", str(port)]
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        self._process = subprocess.Popen(  # noqa: S603
            command, cwd=ROOT, env=env, stdout=self._log, stderr=self._log
        )

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def wait(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                pytest.fail(f"the server exited at start:\n{self.output()}")
            try:
                if httpx.get(f"{self.base_url}/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer /health/live within {timeout} s")
            time.sleep(0.05)

    def stop(self) -> str:
        """Stop the server; its output."""
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        output = self.output()
        self._log.close()
        return output


@contextmanager
def running(*servers: Server) -> Iterator[None]:
    """Wait for servers started side by side; stop them all, then check their logs."""
    try:
        for server in servers:
            server.wait()
        yield
    finally:
        outputs = [server.stop() for server in servers]
    for output in outputs:
        # An unhandled exception is a bug even when the response looked fine to the client.
        assert "Traceback" not in output, output


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str, str]]:
    """The service as configured for the tests; the same service (same database) with no
    bot, its cache's Redis down, Hunter never answering and Clearbit refusing connections;
    and one whose database does not answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # connections queue up and are never answered
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        closed_port = _free_port()
        configured = Server()
        degraded = Server(
            TELEGRAM_BOT_USERNAME=None,
            TELEGRAM_BOT_TOKEN=None,
            REDIS_URL=f"redis://127.0.0.1:{closed_port}/0",
            HUNTER_API_KEY="test-hunter-key",
            HUNTER_BASE_URL=silent_url,
            HUNTER_DEADLINE_SECONDS="0.3",
            INTEGRATIONS_TIMEOUT_SECONDS="0.2",
            CLEARBIT_API_KEY="test-clearbit-key",
            CLEARBIT_BASE_URL=f"http://127.0.0.1:{closed_port}",
        )
        databaseless = Server(DATABASE_URL=f"postgresql://nobody@127.0.0.1:{closed_port}/none")
        with running(configured, degraded, databaseless):
            yield configured.base_url, degraded.base_url, databaseless.base_url


@pytest.fixture(scope="module")
def server(servers: tuple[str, str, str]) -> str:
    return servers[0]


@pytest.fixture(scope="module")
def degraded_server(servers: tuple[str, str, str]) -> str:
    return servers[1]


@pytest.fixture(scope="module")
def databaseless_server(servers: tuple[str, str, str]) -> str:
    return servers[2]


async def _execute(*statements: Executable) -> None:
    """Run statements on the servers' database, outside any server."""
    engine = create_async_engine(db.async_url(os.environ["DATABASE_URL"]))
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(statement)
    finally:
        await engine.dispose()


async def attach_telegram(user_id: int, telegram_id: int) -> None:
    """What the bot does when a user opens their link: out of the HTTP API's reach."""
    users = User.ormar_config.table
    await _execute(users.update().where(users.c.id == user_id).values(telegram_id=telegram_id))


async def wipe() -> None:
    """Empty every table and the server's Redis db; the server wrote them, not our `core`."""
    await _execute(*emptying_statements())
    if redis_url := os.environ.get("REDIS_URL"):
        client = Redis.from_url(redis_url)
        try:
            await client.flushdb()
        finally:
            await client.aclose()


@pytest.fixture(scope="module", autouse=True)
async def _wipe_afterwards() -> AsyncIterator[None]:
    yield
    await wipe()
