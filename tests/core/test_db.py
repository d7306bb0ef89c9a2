"""The hot reads (`core.infra.db.Read`) and the connections statements run on."""

from __future__ import annotations

import datetime as dt
import os

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from core.infra import clock
from core.infra.db import DatabaseUnavailable, Read, database, in_transaction, increment, is_outage
from core.program.tables import program_totals
from core.users.models import ACCOUNT_COLUMNS, Account, User
from tests.conftest import BACKEND, SERVERS
from tests.mysql import mysql_connect

_users = User.ormar_config.table
BY_EMAIL = Read(sa.select(*ACCOUNT_COLUMNS).where(_users.c.email == sa.bindparam("email")))
CREATED_SINCE = Read(
    sa.select(_users.c.id)
    .where(_users.c.created_at >= sa.bindparam("since", type_=_users.c.created_at.type))
    .order_by(_users.c.id)
)


async def test_a_read_gives_tuples_in_column_order_with_utc_datetimes(core):
    created = await User.objects.create(email="reader@example.com", full_name="Reader")
    row = await BY_EMAIL.first(email="reader@example.com")
    assert row is not None
    account = Account(*row)
    assert (account.id, account.email, account.full_name) == (
        created.id,
        "reader@example.com",
        "Reader",
    )
    assert account.created_at.utcoffset() == dt.timedelta(0)
    assert abs(account.created_at - created.created_at) < dt.timedelta(seconds=1)
    assert await BY_EMAIL.first(email="nobody@example.com") is None


async def test_a_read_binds_datetimes_on_both_databases(core):
    before = clock.utcnow() - dt.timedelta(seconds=1)
    first = await User.objects.create(email="early@example.com")
    assert [row[0] for row in await CREATED_SINCE.all(since=before)] == [first.id]
    assert await CREATED_SINCE.all(since=clock.utcnow() + dt.timedelta(hours=1)) == []


async def test_a_read_inside_a_transaction_sees_its_writes(core):
    """In a transaction the read runs on that transaction's connection, not a pooled one."""
    seen = []

    async def write_read_and_fail() -> None:
        async with database.transaction():
            await User.objects.create(email="uncommitted@example.com")
            seen.append(await BY_EMAIL.first(email="uncommitted@example.com"))
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        await write_read_and_fail()
    assert seen[0] is not None
    assert await BY_EMAIL.first(email="uncommitted@example.com") is None


async def _end_server_connections(url: sa.URL) -> int:
    """End every other connection of this database on the server, as a restart would."""
    if BACKEND == "mariadb":
        admin = await mysql_connect(url)
        try:
            async with admin.cursor() as cursor:
                await cursor.execute(
                    "SELECT ID FROM information_schema.PROCESSLIST"
                    " WHERE DB = %s AND ID <> CONNECTION_ID()",
                    (url.database,),
                )
                ids = [row[0] for row in await cursor.fetchall()]
                for thread in ids:
                    await cursor.execute(f"KILL CONNECTION {int(thread)}")
        finally:
            admin.close()
        return len(ids)
    admin = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    try:
        return int(
            await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    finally:
        await admin.close()


@pytest.mark.skipif(BACKEND not in SERVERS, reason="a database server's connection ends")
async def test_a_read_survives_connections_the_server_closed(core):
    """A restart or an idle cut closes pooled connections: the read reconnects, no ping."""
    await User.objects.create(email="survivor@example.com")
    for _ in range(3):  # several pooled connections, all opened before the cut
        assert await BY_EMAIL.first(email="survivor@example.com") is not None
    ended = await _end_server_connections(make_url(os.environ["DATABASE_URL"]))
    assert ended >= 1
    for _ in range(3):
        assert await BY_EMAIL.first(email="survivor@example.com") is not None


def test_an_unavailable_database_is_an_outage():
    assert isinstance(DatabaseUnavailable("QueryCanceledError: timeout"), OSError)
    assert is_outage(DatabaseUnavailable("gone"))


async def _totals() -> tuple[int, int] | None:
    async with database.connection() as connection:
        row = (
            await connection.execute(
                sa.select(program_totals.c.users, program_totals.c.qualified).where(
                    program_totals.c.id == 1
                )
            )
        ).first()
    return (row[0], row[1]) if row else None


async def test_increments_are_merged_and_written_when_the_transaction_commits(core):
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    sa.event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with database.transaction():
            increment(program_totals, {"id": 1}, users=1)
            increment(program_totals, {"id": 1}, users=2, qualified=1)
            assert await _totals() is None  # nothing written yet: the row is not locked
    finally:
        sa.event.remove(database.engine.sync_engine, "before_cursor_execute", seen)
    assert await _totals() == (3, 1)
    assert sum("program_totals" in statement for statement in statements) == 2  # read, upsert


async def _failing_change(users: int) -> None:
    async with database.transaction():
        increment(program_totals, {"id": 1}, users=users)
        raise RuntimeError("the change failed")


async def test_increments_roll_back_with_their_transaction_or_savepoint(core):
    with pytest.raises(RuntimeError, match="the change failed"):
        await _failing_change(1)
    assert await _totals() is None
    async with database.transaction():
        increment(program_totals, {"id": 1}, users=1)
        with pytest.raises(RuntimeError, match="the change failed"):
            await _failing_change(10)  # a savepoint of the outer transaction
    assert await _totals() == (1, 0)


async def test_what_belongs_to_a_transaction_refuses_to_run_outside_one(core):
    with pytest.raises(RuntimeError, match="inside the caller's transaction"):
        increment(program_totals, {"id": 1}, users=1)
    with pytest.raises(RuntimeError, match="inside the caller's transaction"):
        in_transaction()
    async with database.transaction():
        assert in_transaction() is database.get_transaction_connection()
