"""A database that is locked or does not answer: requests get a quick 503, never a queue.

Real servers with short bounds (DATABASE_STATEMENT_TIMEOUT_SECONDS and friends); the client's
own timeout is generous, so only a wait with no bound at all fails these tests.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from tests.conftest import API, BACKEND, PASSWORD, SERVERS
from tests.e2e.conftest import Server, running
from tests.mysql import mysql_connect

BOUNDS = {
    "DATABASE_STATEMENT_TIMEOUT_SECONDS": "1",
    "DATABASE_POOL_TIMEOUT_SECONDS": "1",
    "DATABASE_CONNECT_TIMEOUT_SECONDS": "1",
    "DATABASE_READY_TIMEOUT_SECONDS": "1",
}
CLIENT_TIMEOUT = 15  # far above every bound, far below the old 30 s pool wait


@contextmanager
def bounded_server(**env: str) -> Iterator[str]:
    server = Server(**BOUNDS, **env)
    with running(server):
        yield server.base_url


@asynccontextmanager
async def users_locked() -> AsyncIterator[None]:
    """Another client holds a lock on `users` that every request needs."""
    url = os.environ["DATABASE_URL"]
    if BACKEND == "services":
        parsed = make_url(url)
        connection = await asyncpg.connect(
            host=parsed.host, port=parsed.port, user=parsed.username, database=parsed.database
        )
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            await transaction.rollback()
            await connection.close()
    elif BACKEND == "mariadb":
        holder = await mysql_connect(url, to_database=True)
        async with holder.cursor() as cursor:
            await cursor.execute("LOCK TABLES users WRITE")
        try:
            yield
        finally:
            async with holder.cursor() as cursor:
                await cursor.execute("UNLOCK TABLES")
            holder.close()
    else:
        # SQLite readers never wait (WAL), writers do: hold the write lock.
        holder = sqlite3.connect(make_url(url).database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()


async def test_a_locked_table_is_a_quick_503() -> None:
    with bounded_server() as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT) as http:
            body = {"email": "locked.out@example.com", "password": PASSWORD}
            assert (await http.post(f"{API}/auth/register", json=body)).status_code == 201
            token = await http.post(
                f"{API}/auth/token", data={"username": body["email"], "password": PASSWORD}
            )
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            async with users_locked():
                other = {"email": "waiting@example.com", "password": PASSWORD}
                refused = [await http.post(f"{API}/auth/register", json=other)]
                if BACKEND in SERVERS:  # SQLite lets reads through a writer's lock
                    refused.append(await http.get(f"{API}/users/me", headers=headers))
                for response in refused:
                    assert response.status_code == 503, response.text
                    assert response.json()["code"] == "service_unavailable"
                    assert response.headers["retry-after"]
            assert (await http.get(f"{API}/users/me", headers=headers)).status_code == 200


async def test_readiness_answers_when_the_database_never_does() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # connections are accepted by the kernel and never answered
        scheme = "mysql" if BACKEND == "mariadb" else "postgresql"
        url = f"{scheme}://nobody@127.0.0.1:{silent.getsockname()[1]}/none"
        with bounded_server(DATABASE_URL=url) as base_url:
            async with httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT) as http:
                ready = await http.get("/health/ready")
                assert ready.status_code == 503
                assert ready.json()["database"] == "unavailable"
                lookup = await http.get(f"{API}/referral-codes/ABCDEFGH")
                assert lookup.status_code == 503
                assert lookup.json()["code"] == "service_unavailable"
