"""Test set-up: one database per run (a SQLite file; PostgreSQL with TEST_BACKEND=services;
MariaDB or MySQL with TEST_BACKEND=mariadb), migrated by Alembic, emptied after every test;
Redis db from TEST_REDIS_URL on the two server backends."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

BACKEND = os.environ.get("TEST_BACKEND", "sqlite")
ROOT = Path(__file__).resolve().parent.parent
_tmp = Path(tempfile.mkdtemp(prefix="referral-tests-"))

# The backends that run on database servers, shared by several processes (PostgreSQL, MariaDB).
SERVERS = ("services", "mariadb")

if BACKEND == "services":
    DATABASE_URL = os.environ.get(
        "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/referral_test"
    )
    REDIS_URL: str | None = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
elif BACKEND == "mariadb":
    DATABASE_URL = os.environ.get("TEST_MARIADB_URL", "mysql://root@127.0.0.1:3306/referral_test")
    REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/12")
else:
    DATABASE_URL = f"sqlite:///{_tmp / 'test.db'}"
    REDIS_URL = None

# The core reads its settings at import: fix them before anything imports it.
os.environ.update(
    ENV_FILE="none",  # a developer's .env must not leak into the tests
    ENVIRONMENT="test",
    DATABASE_URL=DATABASE_URL,
    SECRET_KEY="test-secret-key-that-is-long-enough-for-hs256-0123456789",
    RATE_LIMIT_ENABLED="false",
    TELEGRAM_BOT_USERNAME="referral_test_bot",
    LOG_LEVEL="WARNING",
    # Tests that need a worker start one, so every other test sees its jobs as it left them.
    JOBS_IN_PROCESS="false",
    WEBHOOK_ALLOW_PRIVATE_NETWORKS="false",
)
os.environ.pop("REDIS_URL", None)
if REDIS_URL:
    os.environ["REDIS_URL"] = REDIS_URL
for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_URL", "HUNTER_API_KEY", "CLEARBIT_API_KEY"):
    os.environ.pop(name, None)

import httpx  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from core.container import Core, build_core  # noqa: E402
from core.infra import db, security  # noqa: E402
from core.infra.cache import MemoryCache, RedisCache  # noqa: E402
from core.infra.settings import Settings, get_settings  # noqa: E402
from core.migrate import upgrade_to_head  # noqa: E402
from tests.redis_server import Proxy, RedisServer  # noqa: E402

# Production argon2 costs ~0.25 s a hash here; the tests check behaviour, not cost, so they
# hash with the same algorithm at its cheapest settings.
security.set_hash_cost(time_cost=1, memory_cost=8192, parallelism=1)


def pytest_report_header() -> list[str]:
    return [f"backend: {BACKEND} ({DATABASE_URL}), cache: {REDIS_URL or 'in-process'}"]


def _prepare_postgres(url: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = parsed.database

    async def recreate() -> None:
        admin = await asyncpg.connect(
            host=parsed.host,
            port=parsed.port or 5432,
            user=parsed.username,
            password=parsed.password,
            database="postgres",
        )
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()

    asyncio.run(recreate())


def _prepare_mysql(url: str) -> None:
    from sqlalchemy.engine import make_url

    from tests.mysql import mysql_run

    name = make_url(url).database
    asyncio.run(mysql_run(url, f"DROP DATABASE IF EXISTS `{name}`", f"CREATE DATABASE `{name}`"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e starts real servers: marked, so it can be run apart."""
    for item in items:
        if "e2e" in item.path.parts:
            item.add_marker(pytest.mark.e2e)
        if "browser" in item.path.parts:
            item.add_marker(pytest.mark.browser)


def pytest_sessionstart(session: pytest.Session) -> None:
    if BACKEND == "services":
        _prepare_postgres(DATABASE_URL)
    elif BACKEND == "mariadb":
        _prepare_mysql(DATABASE_URL)
    upgrade_to_head(DATABASE_URL)  # the same Alembic history `make run` applies


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
async def core(settings: Settings) -> AsyncIterator[Core]:
    instance = build_core(settings)
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture(scope="session")
async def app(core: Core, settings: Settings) -> AsyncIterator[FastAPI]:
    from api.main import create_app

    application = create_app(settings, core=core)
    async with LifespanManager(application) as manager:
        yield manager.app  # type: ignore[misc]


def emptying_statements() -> list[Any]:
    """What empties every table but the default campaign, which goes back to what migration
    0011 made."""
    from core.campaigns.tables import DEFAULT_ID, campaigns

    statements: list[Any] = []
    for table in reversed(db.metadata.sorted_tables):
        if table is campaigns:
            statements.append(table.delete().where(table.c.id != DEFAULT_ID))
            statements.append(
                table.update().values(
                    name="Default", status="active", starts_at=None, ends_at=None, rules={}
                )
            )
        else:
            statements.append(table.delete())
    return statements


async def reset_state(core: Core) -> None:
    """Empty every table and the cache: each test starts from nothing (but the default
    campaign, as migration 0011 made it)."""
    async with db.database.transaction(), db.database.connection() as connection:
        for statement in emptying_statements():
            await connection.execute(statement)
    core.link_opens.forget()
    core.invites.forget()
    if isinstance(core.cache, MemoryCache):
        await core.cache.close()
    elif isinstance(core.cache, RedisCache):
        await core.cache.client.flushdb()


@pytest.fixture(autouse=True)
async def _clean(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if "core" in request.fixturenames:
        await reset_state(request.getfixturevalue("core"))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    from tests.contract import ContractCheck

    transport = httpx.ASGITransport(app=ContractCheck(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


API = "/api/v1"
PASSWORD = "correct horse battery"


@pytest.fixture
def register(client: httpx.AsyncClient) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def _register(email: str, **fields: Any) -> dict[str, Any]:
        body = {"email": email, "password": PASSWORD, **fields}
        response = await client.post(f"{API}/auth/register", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    return _register


@pytest.fixture
def login(client: httpx.AsyncClient) -> Callable[..., Awaitable[dict[str, str]]]:
    """Sign in; returns the Authorization header."""

    async def _login(email: str, password: str = PASSWORD) -> dict[str, str]:
        response = await client.post(
            f"{API}/auth/token", data={"username": email, "password": password}
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    return _login


@pytest.fixture
def user(
    register: Any, login: Any
) -> Callable[..., Awaitable[tuple[dict[str, Any], dict[str, str]]]]:
    """Register and sign in: (user body, auth headers)."""

    async def _user(email: str, **fields: Any) -> tuple[dict[str, Any], dict[str, str]]:
        body = await register(email, **fields)
        return body, await login(email)

    return _user


@pytest.fixture
async def operator(client: httpx.AsyncClient, user: Any) -> dict[str, str]:
    """A superuser's Authorization header (superusers are made from the command line)."""
    from core.users.models import User

    body, _ = await user("root@example.com")
    await User.objects.filter(id=body["id"]).update(is_superuser=True)
    response = await client.post(
        f"{API}/auth/token",
        data={"username": "root@example.com", "password": "correct horse battery"},
    )
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
async def own_redis() -> AsyncIterator[RedisServer]:
    """A redis-server of the test's own (skips where none is installed), for tests that stop
    or cut it."""
    instance = RedisServer()
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
async def proxy(own_redis: RedisServer) -> AsyncIterator[Proxy]:
    """A proxy to `own_redis` that a test can cut, blackhole or slow down."""
    instance = Proxy(own_redis.port)
    await instance.start()
    yield instance
    await instance.close()
