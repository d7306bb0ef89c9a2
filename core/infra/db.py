"""The database connection, the shared metadata and the column types every model uses."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

import ormar
import sqlalchemy as sa
from ormar.databases.transaction import Transaction as OrmarTransaction
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from core.infra.settings import DatabaseSettings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

T = TypeVar("T")

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    # asyncmy: twice aiomysql's reads on its own pool (bench/mysql_drivers.py, README).
    "mysql": "mysql+asyncmy",
    "mariadb": "mariadb+asyncmy",
}
# MySQL and MariaDB: one dialect family, the same SQL here.
MYSQL_FAMILY = ("mysql", "mariadb")


def is_mysql(dialect_name: str) -> bool:
    return dialect_name in MYSQL_FAMILY


def backend_name(url: str) -> str:
    """`sqlite`, `postgresql`, …: the database a URL names."""
    return str(make_url(url).get_backend_name())


def async_url(url: str) -> str:
    """Accept plain `sqlite:///…`, `postgresql://…`, `mysql://…` and `mariadb://…` URLs and add
    the async driver (and, for the MySQL family, 4-byte UTF-8 on the wire)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise ValueError(
            f"unsupported database {backend!r}: use sqlite, postgresql, mysql or mariadb"
        )
    if is_mysql(backend) and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    if parsed.drivername == "postgres":  # Heroku-style alias
        parsed = parsed.set(drivername="postgresql")
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=_ASYNC_DRIVERS[backend])
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ValueError("use a SQLite file: in-memory SQLite cannot be shared by a pool")
    return parsed.render_as_string(hide_password=False)


def _engine_options(url: str, bounds: DatabaseSettings) -> dict[str, Any]:
    # Parameters never reach a log line (they hold password hashes and emails), and every
    # wait is bounded: a locked table or a full pool is a quick error, not a queue.
    common: dict[str, Any] = {"hide_parameters": True, "pool_timeout": bounds.pool_timeout_seconds}
    if make_url(url).get_backend_name() == "sqlite":
        # One connection serialises writers inside a process, so SQLite never sees two
        # transactions of ours racing for its lock; busy_timeout covers other processes.
        return {
            **common,
            "pool_size": 1,
            "max_overflow": 0,
            "connect_args": {"timeout": bounds.statement_timeout_seconds},
        }
    if is_mysql(make_url(url).get_backend_name()):
        return {
            **common,
            "pool_size": bounds.pool_size,
            "max_overflow": 0,
            "pool_recycle": 1800,
            # PostgreSQL's: a statement sees what committed before it, not a snapshot taken
            # at the transaction's first read (and takes no gap locks).
            "isolation_level": "READ COMMITTED",
            # The hot reads have their own pool (MySQLReads), so what checks out of this one
            # is a write or a transaction: a ping first (a cheap COM_PING) replaces a
            # connection a restart closed instead of failing the request.
            "pool_pre_ping": True,
            "connect_args": {
                "connect_timeout": max(1, round(bounds.connect_timeout_seconds)),
                # The client gives up a moment after the server's own bounds (below).
                "read_timeout": bounds.statement_timeout_seconds + 1,
            },
        }
    statement_ms = int(bounds.statement_timeout_seconds * 1000)
    return {
        **common,
        "pool_size": bounds.pool_size,
        "max_overflow": 0,
        # No ping before each checkout (a round trip per query). A connection the server
        # dropped fails its one request with a 503, and SQLAlchemy then drops every pooled
        # connection older than that failure; recycling retires idle ones before a proxy or
        # firewall would cut them.
        "pool_recycle": 1800,
        "connect_args": {
            "timeout": bounds.connect_timeout_seconds,
            # The server ends a statement (lock waits included) after this; the client gives
            # up a moment later should the server not answer at all.
            "server_settings": {"statement_timeout": str(statement_ms)},
            "command_timeout": bounds.statement_timeout_seconds + 1,
        },
    }


def statement_bound(*, mariadb: bool, seconds: float) -> str:
    """The session setting that ends a statement after `seconds`: MariaDB's and MySQL's."""
    if mariadb:
        return f"max_statement_time = {seconds:g}"
    return f"max_execution_time = {int(seconds * 1000)}"


def bound_mysql_waits(engine: Any, seconds: float) -> None:
    """Every new connection of the engine bounds its waits on the server, as PostgreSQL's
    statement_timeout does: row and table lock waits (whole seconds, at least 1) and
    statements (MariaDB's max_statement_time; MySQL's max_execution_time, reads only)."""

    @sa.event.listens_for(engine.sync_engine, "connect")
    def _bound(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT VERSION()")
            mariadb = "mariadb" in str(cursor.fetchone()[0]).lower()
            reads = statement_bound(mariadb=mariadb, seconds=seconds)
            locks = max(1, round(seconds))
            cursor.execute(
                f"SET SESSION innodb_lock_wait_timeout = {locks}, lock_wait_timeout = {locks},"
                f" {reads}"
            )
        finally:
            cursor.close()


@sa.event.listens_for(sa.engine.Engine, "handle_error")
def _check_refused(context: Any) -> Any:
    """A CHECK that refuses a row is an IntegrityError on every database, on every engine
    (MariaDB and MySQL report it as an operational error)."""
    if _mysql_errno(context.sqlalchemy_exception) in _CHECK_FAILED:
        return sa.exc.IntegrityError(
            context.statement, context.parameters, context.original_exception
        )
    return None


def ensure_sqlite_directory(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


class Unit:
    """What one transaction carries besides its connection.

    - `entries`: counter increments, written just before it commits, merged per row, one
      upsert per row in a fixed order, the rows every change shares (tables marked
      `info={"hot": True}`: the totals, a day's row) last: a hot row is locked for the last
      statements of the transaction only, and two transactions never lock the same rows in
      opposite orders;
    - `memo`: reads that stay true for the transaction (`remembered`).
    """

    def __init__(self) -> None:
        self.entries: list[tuple[sa.Table, tuple[tuple[str, Any], ...], dict[str, int]]] = []
        self.memo: dict[str, Any] = {}

    def add(self, table: sa.Table, keys: dict[str, Any], increments: dict[str, int]) -> None:
        self.entries.append((table, tuple(sorted(keys.items())), increments))

    async def write(self, connection: AsyncConnection) -> None:
        merged: dict[tuple[str, tuple[tuple[str, Any], ...]], dict[str, int]] = {}
        tables = {}
        for table, keys, increments in self.entries:
            row = merged.setdefault((table.name, keys), {})
            tables[table.name] = table
            for name, value in increments.items():
                row[name] = row.get(name, 0) + value
        self.entries.clear()
        # Consecutive rows of one shape (both sides' balances) go in one executemany.
        batches: list[tuple[Any, list[dict[str, Any]]]] = []

        # Rows every change shares (a day's, the totals: `info={"hot": True}`) last, so each is
        # locked for the fewest statements; the order is fixed either way.
        def order(item: Any) -> tuple[bool, str, Any]:
            (name, keys), _ = item
            return (bool(tables[name].info.get("hot")), name, keys)

        for (name, keys), increments in sorted(merged.items(), key=order):
            increments = {column: value for column, value in increments.items() if value}
            if increments:
                statement = _upsert(
                    connection.dialect.name,
                    tables[name],
                    tuple(key for key, _ in keys),
                    tuple(sorted(increments)),
                )
                if not batches or batches[-1][0] is not statement:
                    batches.append((statement, []))
                batches[-1][1].append({**dict(keys), **increments})
        if connection.dialect.name == "postgresql":
            await _write_raw(connection, batches)
            return
        for statement, rows in batches:
            await connection.execute(statement, rows if len(rows) > 1 else rows[0])


_RAW: dict[int, tuple[str, tuple[str, ...]]] = {}


@contextlib.contextmanager
def _as_sqlalchemy_raises(sql: str, values: Any) -> Iterator[None]:
    """A statement sent straight to asyncpg fails as it would through SQLAlchemy: an outage
    as `DatabaseUnavailable`, a refused constraint as `IntegrityError`."""
    try:
        yield
    except Exception as exc:
        if is_outage(exc):
            raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if type(exc).__name__.endswith("ViolationError"):  # asyncpg's integrity errors
            raise sa.exc.IntegrityError(sql, values, exc) from exc
        raise


async def _driver_in_transaction(connection: AsyncConnection) -> Any:
    """The asyncpg connection under `connection`, its transaction begun: SQLAlchemy's
    adapter sends BEGIN lazily, with its first statement, so a statement sent straight to the
    driver first would run outside the transaction."""
    pooled: Any = await connection.get_raw_connection()
    adapted = pooled.dbapi_connection
    if connection.in_transaction() and getattr(adapted, "_transaction", True) is None:
        await adapted._start_transaction()
    return pooled.driver_connection


async def _write_raw(connection: AsyncConnection, batches: list[tuple[Any, list[Any]]]) -> None:
    """The counters' upserts on PostgreSQL, straight on the transaction's asyncpg connection:
    compiled once each (their values are whole numbers, dates and keys, bound as they are),
    without SQLAlchemy's execution layer, which costs more than the statements (a
    conversion writes six). Refusals and outages are raised as SQLAlchemy's would be."""
    raw: Any = await _driver_in_transaction(connection)
    for statement, rows in batches:
        compiled = _RAW.get(id(statement))
        if compiled is None:
            done = statement.compile(dialect=connection.dialect)
            compiled = _RAW[id(statement)] = (done.string, tuple(done.positiontup or ()))
        sql, names = compiled
        values = [[row[name] for name in names] for row in rows]
        _traced(sql, values[0])
        with _as_sqlalchemy_raises(sql, values):
            if len(values) == 1:
                await raw.execute(sql, *values[0])
            else:
                await raw.executemany(sql, values)


def insert_of(dialect: str) -> Any:
    """The dialect's INSERT: ON CONFLICT on SQLite and PostgreSQL (spelt alike), ON DUPLICATE
    KEY on the MySQL family."""
    if is_mysql(dialect):
        return mysql.insert
    return sqlite.insert if dialect == "sqlite" else postgresql.insert


@functools.cache
def _upsert(
    dialect: str, table: sa.Table, keys: tuple[str, ...], increments: tuple[str, ...]
) -> Any:
    """Add the `increments` to the row at `keys`, creating it (at those values) when missing:
    one statement per shape, built once (building one costs more than running it)."""
    statement = insert_of(dialect)(table).values(
        {name: sa.bindparam(name) for name in keys + increments}
    )
    if is_mysql(dialect):  # the row's only unique key is `keys`
        return statement.on_duplicate_key_update(
            {name: table.c[name] + statement.inserted[name] for name in increments}
        )
    return statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: table.c[name] + statement.excluded[name] for name in increments},
    )


_unit: ContextVar[Unit | None] = ContextVar("unit", default=None)


class Transaction(OrmarTransaction):  # type: ignore[misc]
    """ormar's transaction (savepoints when nested) that writes its `Unit`'s increments last."""

    _token: Token[Unit | None] | None = None
    _mark = 0

    async def __aenter__(self) -> Transaction:
        await super().__aenter__()
        pending = _unit.get()
        if self._depth == 0 or pending is None:
            self._token = _unit.set(Unit())
        else:
            self._mark = len(pending.entries)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        pending = _unit.get()
        try:
            if exc_type is not None and pending is not None and self._token is None:
                del pending.entries[self._mark :]  # the savepoint's increments roll back too
                pending.memo.clear()
            elif exc_type is None and pending is not None and self._token is not None:
                try:
                    assert self._connection is not None  # set by the outermost __aenter__
                    await pending.write(self._connection)
                except BaseException as failure:
                    await super().__aexit__(type(failure), failure, failure.__traceback__)
                    raise
            await super().__aexit__(exc_type, exc_value, traceback)
        finally:
            if self._token is not None:
                _unit.reset(self._token)


def in_transaction() -> AsyncConnection:
    """The connection of the transaction under way; refuses to run outside one.

    What must commit with the caller's change (a job, an event, a counter, a claimed code)
    calls this first, so a call outside a transaction fails at once instead of committing
    its own statement alone.
    """
    ongoing = database.get_transaction_connection()
    if ongoing is None:
        raise RuntimeError("this must run inside the caller's transaction (database.transaction())")
    return ongoing


def _current_unit() -> Unit:
    in_transaction()
    unit = _unit.get()
    assert unit is not None  # set by every Transaction
    return unit


def increment(table: sa.Table, keys: dict[str, Any], **increments: int) -> None:
    """Add to the counters of the row at `keys` when the transaction under way commits."""
    _current_unit().add(table, keys, {name: value for name, value in increments.items() if value})


async def add_now(
    connection: AsyncConnection, table: sa.Table, keys: dict[str, Any], **increments: int
) -> None:
    """`increment`, now: for a row the transaction must hold from here on (a lock others
    queue on before any counter is written)."""
    statement = _upsert(
        connection.dialect.name, table, tuple(sorted(keys)), tuple(sorted(increments))
    )
    await connection.execute(statement, {**keys, **increments})


async def remembered(key: str, read: Callable[[], Awaitable[T]]) -> T:
    """`read()` once per transaction (the webhook endpoints an event goes to, read by each of
    a conversion's events); a write that changes what it read calls `forget(key)`."""
    unit = _current_unit()
    if key not in unit.memo:
        unit.memo[key] = await read()
    return cast(T, unit.memo[key])


def forget(key: str) -> None:
    unit = _unit.get()
    if unit is not None:
        unit.memo.pop(key, None)


class Database(ormar.DatabaseConnection):  # type: ignore[misc]
    """The process's connection, configured from the `Settings` handed to `build_core`.

    ormar binds every model to one connection object when the model class is defined, so the
    object exists from import on; its engine, though, is made only by `connect()`, and what it
    connects to is set by `configure` before that, never read from the environment here.
    """

    def __init__(self) -> None:
        super().__init__("sqlite+aiosqlite:///unconfigured.db")
        self._configured = False
        self.mysql_reads: MySQLReads | None = None  # the hot reads' own pool, on MySQL

    def configure(self, url: str, bounds: DatabaseSettings) -> None:
        url = async_url(url)
        if self.is_connected:
            if url == self._url:
                return  # another core of this process on the same database (the tests' apps)
            raise RuntimeError("the database is connected: disconnect before reconfiguring")
        self._url = url
        self._options = _engine_options(self._url, bounds)
        self._bounds = bounds
        self._configured = True

    @property
    def url(self) -> str:
        if not self._configured:
            raise RuntimeError("the database is not configured: build the core first")
        return str(self._url)

    async def connect(self) -> None:
        if not self._configured:
            raise RuntimeError("the database is not configured: build the core first")
        ensure_sqlite_directory(self._url)
        await super().connect()
        if is_mysql(self.engine.dialect.name):
            bound_mysql_waits(self.engine, self._bounds.statement_timeout_seconds)
            self.mysql_reads = MySQLReads(self._url, self._bounds)

    async def disconnect(self) -> None:
        if self.mysql_reads is not None:
            await self.mysql_reads.close()
            self.mysql_reads = None
        await super().disconnect()

    @property
    def is_sqlite(self) -> bool:
        return bool(self.engine.dialect.name == "sqlite")

    @property
    def is_postgresql(self) -> bool:
        return bool(self.engine.dialect.name == "postgresql")

    def transaction(self, force_rollback: bool = False) -> Transaction:
        return Transaction(self, force_rollback=force_rollback)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """The connection of the transaction under way, else a pooled one in autocommit mode.

        ormar's own would begin a transaction on first use outside one and roll it back at
        the end: BEGIN and ROLLBACK, two more round trips around every read. Outside a
        transaction each statement stands alone; what must be atomic runs in `transaction()`.
        """
        ongoing = self.get_transaction_connection()
        if ongoing is not None:
            yield ongoing
            return
        engine = self._autocommit_engine
        if engine is None:
            raise RuntimeError("the database is not connected")
        async with engine.connect() as connection:
            yield connection


async def execute(connection: AsyncConnection, statement: Any, params: Any = None) -> Any:
    """`connection.execute`, with RETURNING on every database.

    MariaDB returns no rows from an UPDATE (MySQL from no statement): there the rows are
    locked by a SELECT … FOR UPDATE of the statement's own WHERE, changed by their keys, and
    read back, in one transaction (the caller's, or one begun here) — what RETURNING would
    have said, at the cost of two more round trips. Elsewhere it is one statement.
    """
    dialect = connection.dialect
    returning = getattr(statement, "_returning", ())
    if not returning or not is_mysql(dialect.name):
        return await connection.execute(statement, params)
    if isinstance(statement, sa.Update) and not dialect.update_returning:
        return await _atomic(connection, _update_returning, statement, params)
    if isinstance(statement, sa.Insert) and not dialect.insert_returning:
        return await _atomic(connection, _insert_returning, statement, params)
    return await connection.execute(statement, params)


def _row_type(columns: tuple[str, ...]) -> Any:
    """A row read by name or position, with `_mapping` as SQLAlchemy's rows have."""
    base = collections.namedtuple("Row", columns, rename=True)  # type: ignore[misc]
    return type(
        "Row",
        (base,),
        {"__slots__": (), "_mapping": property(lambda row: dict(zip(columns, row, strict=True)))},
    )


class _Rows:
    """What `execute` returns, for a statement run straight on asyncpg (`execute_built`)."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if len(self._rows) != 1:
            raise sa.exc.NoResultFound("expected one row")
        return self._rows[0]

    def all(self) -> list[Any]:
        return self._rows

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]


_BUILT: dict[int, tuple[str, tuple[str, ...], dict[str, Any], Any, tuple[bool, ...]]] = {}


async def execute_built(connection: AsyncConnection, statement: Any, params: dict[str, Any]) -> Any:
    """`execute` for a statement built once at import (a module constant), inside the
    caller's transaction. On PostgreSQL it runs straight on the transaction's asyncpg
    connection, compiled once: the values it binds and the columns it returns are plain
    (numbers, text, moments, booleans; JSON read back as SQLAlchemy would), and
    SQLAlchemy's execution layer costs more than such a statement. Elsewhere: `execute`."""
    if connection.dialect.name != "postgresql":
        return await execute(connection, statement, params)
    built = _BUILT.get(id(statement))
    if built is None:
        compiled = statement.compile(dialect=connection.dialect)
        names = tuple(compiled.positiontup or ())
        bound = {name: value for name, value in compiled.params.items() if value is not None}
        columns = tuple(entry[0] for entry in (compiled._result_columns or ()))
        row_type = _row_type(columns) if columns else None
        json_columns = tuple(
            isinstance(entry[3], sa.JSON) for entry in (compiled._result_columns or ())
        )
        built = _BUILT[id(statement)] = (compiled.string, names, bound, row_type, json_columns)
    sql, names, bound, row_type, json_columns = built
    values = [params[name] if name in params else bound[name] for name in names]
    _traced(sql, values)
    raw: Any = await _driver_in_transaction(connection)
    with _as_sqlalchemy_raises(sql, values):
        if row_type is None:
            status = await raw.execute(sql, *values)
            return _Rows([], int(status.rsplit(" ", 1)[-1]) if status[-1:].isdigit() else 0)
        records = await raw.fetch(sql, *values)
    rows = []
    for record in records:
        fields = list(record)
        for n, is_json in enumerate(json_columns):
            if is_json and isinstance(fields[n], str):
                fields[n] = json.loads(fields[n])
        rows.append(row_type(*fields))
    return _Rows(rows, len(rows))


async def _atomic(connection: AsyncConnection, run: Any, statement: Any, params: Any) -> Any:
    options = (
        connection.sync_connection.get_execution_options() if connection.sync_connection else {}
    )
    if options.get("isolation_level") != "AUTOCOMMIT":
        return await run(connection, statement, params)  # inside the caller's transaction
    await connection.exec_driver_sql("START TRANSACTION")
    try:
        result = await run(connection, statement, params)
    except BaseException:
        await connection.exec_driver_sql("ROLLBACK")
        raise
    await connection.exec_driver_sql("COMMIT")
    return result


def _without_returning(statement: Any) -> Any:
    plain = statement._clone()
    plain._returning = ()
    return plain


async def _update_returning(connection: AsyncConnection, statement: Any, params: Any) -> Any:
    table = statement.table
    key = list(table.primary_key.columns)
    where = statement.whereclause if statement.whereclause is not None else sa.true()
    locked = await connection.execute(sa.select(*key).where(where).with_for_update(), params)
    keys = [tuple(row) for row in locked]
    if not keys:
        return await connection.execute(sa.select(*statement._returning).where(sa.false()))
    # By the keys alone (the WHERE may no longer hold once its own change is made).
    single = len(key) == 1
    matched = key[0].in_([row[0] for row in keys]) if single else sa.tuple_(*key).in_(keys)
    await connection.execute(_without_returning(statement).where(matched), params)
    return await connection.execute(sa.select(*statement._returning).where(matched))


async def _insert_returning(connection: AsyncConnection, statement: Any, params: Any) -> Any:
    table = statement.table
    (key,) = table.primary_key.columns
    plain = _without_returning(statement)
    keys: list[Any] = []
    for row in params if isinstance(params, list) else [params]:
        inserted = await connection.execute(plain, row)
        keys.append(_inserted_key(inserted))
    return await connection.execute(sa.select(*statement._returning).where(key.in_(keys)))


def _inserted_key(result: Any) -> Any:
    inserted = result.inserted_primary_key
    assert inserted is not None  # a single-row INSERT
    return inserted[0]


@functools.cache
def _insert_new(
    dialect: str,
    table: sa.Table,
    unique: tuple[str, ...],
    where: sa.ColumnElement[bool] | None,
    returning: tuple[str, ...],
) -> Any:
    return (
        insert_of(dialect)(table)
        .on_conflict_do_nothing(index_elements=list(unique), index_where=where)
        .returning(*(table.c[name] for name in returning))
    )


@functools.cache
def _insert_new_built(
    table: sa.Table,
    unique: tuple[str, ...],
    where: sa.ColumnElement[bool] | None,
    returning: tuple[str, ...],
    names: tuple[str, ...],
    count: int,
) -> Any:
    """PostgreSQL's INSERT … ON CONFLICT DO NOTHING of `count` rows of these columns, built
    once per shape (`execute_built` compiles it once and runs it straight on asyncpg)."""
    return (
        postgresql.insert(table)
        .values(
            [
                {name: sa.bindparam(f"{name}_{n}", type_=table.c[name].type) for name in names}
                for n in range(count)
            ]
        )
        .on_conflict_do_nothing(index_elements=list(unique), index_where=where)
        .returning(*(table.c[name] for name in returning))
    )


async def insert_new(
    connection: AsyncConnection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    *,
    unique: tuple[str, ...],
    returning: tuple[str, ...],
    where: sa.ColumnElement[bool] | None = None,
) -> Sequence[Any]:
    """Insert the rows whose `unique` key (a partial one: `where`) is not taken yet; returns
    the `returning` columns of the rows inserted. Inside the caller's transaction.

    ON CONFLICT DO NOTHING on SQLite and PostgreSQL, one statement. The MySQL family has
    only INSERT IGNORE, which would pass over every other error too (a foreign key, a CHECK):
    there each row is inserted under a savepoint, and a duplicate key alone is skipped.
    """
    dialect = connection.dialect.name
    if dialect == "postgresql":  # values as plain as `execute_built` needs: aware moments, …
        names = tuple(rows[0])
        assert all(tuple(row) == names for row in rows), "rows of one shape"
        built = _insert_new_built(table, unique, where, returning, names, len(rows))
        values = {f"{name}_{n}": row[name] for n, row in enumerate(rows) for name in names}
        return (await execute_built(connection, built, values)).all()
    if not is_mysql(dialect):
        statement = _insert_new(dialect, table, unique, where, returning)
        return (await connection.execute(statement, rows if len(rows) > 1 else rows[0])).all()
    (key,) = table.primary_key.columns
    keys = []
    for row in rows:
        try:
            async with connection.begin_nested():
                inserted = await connection.execute(sa.insert(table), row)
        except sa.exc.IntegrityError as error:
            if _mysql_errno(error) != _DUPLICATE_KEY:
                raise
            continue
        keys.append(_inserted_key(inserted))
    if not keys:
        return []
    columns = [table.c[name] for name in returning]
    return (await connection.execute(sa.select(*columns).where(key.in_(keys)))).all()


_DUPLICATE_KEY = 1062
_CHECK_FAILED = (4025, 3819)  # MariaDB's and MySQL's "CONSTRAINT … failed"


def _mysql_errno(error: BaseException) -> int | None:
    """The MySQL error number of a driver error, raw or wrapped by SQLAlchemy."""
    raw = getattr(error, "orig", None) or error
    if type(raw).__module__.split(".")[0] not in ("asyncmy", "pymysql", "aiomysql"):
        return None
    args = getattr(raw, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


class DatabaseUnavailable(ConnectionError):
    """The database did not answer a hot read (down, timed out, out of connections): the
    driver's own error, as the OSError every front already treats as an outage."""


def _same(value: Any) -> Any:
    return value


class MySQLReads:
    """The hot reads' own asyncmy pool on MySQL, in autocommit mode, with the engine's bounds:
    connect, the wait for a free connection, the statement (server-side and client-side)."""

    def __init__(self, url: str, bounds: DatabaseSettings) -> None:
        self._url = make_url(url)
        self._bounds = bounds
        self._pool: Any = None
        self._opening = asyncio.Lock()

    async def fetch(self, sql: str, values: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        pool = self._pool or await self._open()
        if pool.freesize:  # one is free: no timer to arm
            connection = await pool.acquire()
        else:
            async with asyncio.timeout(self._bounds.pool_timeout_seconds):
                connection = await pool.acquire()
        try:
            async with connection.cursor() as cursor:
                await cursor.execute(sql, values)
                return cast(Sequence[Sequence[Any]], await cursor.fetchall())
        except BaseException as failure:
            connection.close()  # whatever state it is in, the pool opens a fresh one
            if _connection_lost(failure):
                # The others are as old, and the engine's too: a restart closed them all.
                await pool.clear()
                database.engine.sync_engine.pool._invalidate_time = time.time()
            raise
        finally:
            pool.release(connection)

    async def _open(self) -> Any:
        import asyncmy

        async with self._opening:
            if self._pool is None:
                seconds = self._bounds.statement_timeout_seconds
                async with database.engine.connect():  # the dialect learns the server's kind
                    pass
                mariadb = bool(getattr(database.engine.dialect, "is_mariadb", False))
                reads = statement_bound(mariadb=mariadb, seconds=seconds)
                url = self._url
                async with asyncio.timeout(self._bounds.connect_timeout_seconds):
                    self._pool = await asyncmy.create_pool(
                        host=url.host,
                        port=url.port or 3306,
                        user=url.username,
                        password=url.password or "",
                        db=url.database,
                        charset=str(url.query.get("charset", "utf8mb4")),
                        autocommit=True,
                        minsize=1,
                        maxsize=self._bounds.pool_size,
                        connect_timeout=max(1, round(self._bounds.connect_timeout_seconds)),
                        read_timeout=seconds + 1,
                        init_command=f"SET SESSION {reads}",
                    )
            return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            await self._pool.wait_closed()
            self._pool = None


@dataclass(frozen=True, slots=True)
class _MySQLTypes:
    binds: tuple[Callable[[Any], Any] | None, ...]
    # The columns whose values SQLAlchemy would convert, with their conversion.
    converted: tuple[tuple[int, Callable[[Any], Any]], ...]


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """MySQL's DATETIME as `UTCDateTimeType` reads it: the stored UTC, made aware."""
    return value.replace(tzinfo=dt.UTC) if value is not None else None


def _traced(sql: str, values: Any) -> None:
    """Whoever traces SQL through SQLAlchemy's events sees the reads that skip it too."""
    engine = database.engine.sync_engine
    if engine.dispatch.before_cursor_execute:
        engine.dispatch.before_cursor_execute(None, None, sql, values, None, False)


class Read:
    """A read on a hot path: a Core statement over ormar's tables, with named bind parameters.

    On PostgreSQL it is compiled once and run on the pooled asyncpg connection itself, so
    asyncpg's own prepared statement answers it and SQLAlchemy's execution layer (cache key,
    execution context, result adaptation: more than the round trip costs) is skipped. Rows
    come back as tuples of the selected columns, in order. On MySQL a SELECT runs the same
    way on the pooled asyncmy connection, its values converted by the types' own processors.
    Inside a transaction, and on SQLite, it runs through SQLAlchemy like any statement. An
    UPDATE … RETURNING that is safe to run twice takes the same path (on MySQL, `execute`).
    """

    def __init__(self, statement: sa.Select[Any] | sa.CompoundSelect | sa.Update) -> None:
        self.statement = statement
        # The SQL, its parameters in order, and the values bound in the statement itself
        # (literals such as `status = 'approved'` or `sum(...) > 0` become parameters too).
        self._compiled: tuple[str, tuple[str, ...], dict[str, Any]] | None = None
        # MySQL: each parameter's and each column's type conversion (UTC, booleans, JSON).
        self._mysql: _MySQLTypes | None = None

    async def all(self, **params: Any) -> Sequence[Sequence[Any]]:
        ongoing = database.get_transaction_connection()
        lean = isinstance(self.statement, sa.Select | sa.CompoundSelect)
        if ongoing is None and lean and is_mysql(database.engine.dialect.name):
            return await self._on_asyncmy(params)
        if ongoing is not None or not database.is_postgresql:
            return await self._through_sqlalchemy(retry=ongoing is None, params=params)
        sql, names, bound = self._compiled or self._compile()
        values = [params[name] if name in params else bound[name] for name in names]
        _traced(sql, values)
        # Straight from the pool: no Connection object, no execution context (a third of
        # the read's cost); no transaction is begun on it, so none is left to reset. A read
        # is safe to repeat: on a connection the server had closed (a restart, an idle cut)
        # it is tried once more on a fresh one, instead of a ping before every checkout.
        for attempt in (1, 2):
            pooled = await database.engine.raw_connection()
            driver: Any = pooled.driver_connection
            failure: Exception = ConnectionResetError("the server closed the connection")
            try:
                if not driver.is_closed():
                    rows: Sequence[Sequence[Any]] = await driver.fetch(sql, *values)
                    return rows
            except Exception as exc:
                if not driver.is_closed():
                    if is_outage(exc):  # a timeout, a lock: the connection itself is fine
                        raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
                    raise
                failure = exc
            finally:
                if driver.is_closed():
                    # What SQLAlchemy does on a disconnect: this connection and every one
                    # opened before it are replaced at their next checkout.
                    database.engine.sync_engine.pool._invalidate(pooled, failure)
                pooled.close()
            if attempt == 2:
                raise DatabaseUnavailable(f"{type(failure).__name__}: {failure}") from failure
        raise AssertionError("unreachable")

    async def _on_asyncmy(self, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        """A SELECT on MySQL, on a connection of the reads' own asyncmy pool (autocommit: no
        transaction to end, so nothing to reset): compiled once, its values converted as
        SQLAlchemy would (aware UTC, booleans, JSON), one round trip. Tried once more on a
        fresh connection when the server had closed this one."""
        sql, names, bound = self._compiled or self._compile()
        types = self._mysql or self._mysql_types()
        values = tuple(
            (convert or _same)(params[name] if name in params else bound[name])
            for name, convert in zip(names, types.binds, strict=True)
        )
        _traced(sql, values)
        for attempt in (1, 2):
            try:
                assert database.mysql_reads is not None  # set by connect() on MySQL
                rows = await database.mysql_reads.fetch(sql, values)
            except Exception as exc:
                if _connection_lost(exc) and attempt == 1:
                    continue
                if is_outage(exc):
                    raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
                raise
            if not types.converted:
                return list(rows)
            converted = []
            for row in rows:
                values_of = list(row)
                for index, convert in types.converted:
                    values_of[index] = convert(values_of[index])
                converted.append(values_of)
            return converted
        raise AssertionError("unreachable")

    def _mysql_types(self) -> _MySQLTypes:
        dialect = database.engine.dialect
        compiled = self.statement.compile(dialect=dialect)
        binds = tuple(
            compiled.binds[name].type._cached_bind_processor(dialect)
            for name in (compiled.positiontup or ())
        )
        converted = tuple(
            (index, _utc if isinstance(column.type, UTCDateTimeType) else processor)
            for index, column in enumerate(compiled._result_columns)
            if (processor := column.type._cached_result_processor(dialect, None)) is not None
        )
        self._mysql = _MySQLTypes(binds=binds, converted=converted)
        return self._mysql

    async def _through_sqlalchemy(
        self, *, retry: bool, params: dict[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """SQLAlchemy Core, one round trip (MySQL's UPDATE … RETURNING: `execute`). Outside a
        transaction a read on a connection the server had closed is tried once more: the
        failure invalidated the pool's older connections, the retry takes a fresh one."""
        for attempt in (1, 2):
            try:
                async with database.connection() as connection:
                    return (await execute(connection, self.statement, params)).all()
            except Exception as error:
                if not (retry and attempt == 1 and _connection_lost(error)):
                    raise
                # Like SQLAlchemy's own invalidation: every connection opened before this
                # failure is replaced at its next checkout.
                database.engine.sync_engine.pool._invalidate_time = time.time()
        raise AssertionError("unreachable")

    async def first(self, **params: Any) -> Sequence[Any] | None:
        rows = await self.all(**params)
        return rows[0] if rows else None

    def _compile(self) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        compiled = self.statement.compile(dialect=database.engine.dialect)
        bound = {name: value for name, value in compiled.params.items() if value is not None}
        self._compiled = (compiled.string, tuple(compiled.positiontup or ()), bound)
        return self._compiled


metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
database = Database()
base_config = ormar.OrmarConfig(metadata=metadata, database=database)


# Primary keys are 32-bit on PostgreSQL: a larger id names no row, and the drivers refuse to
# bind it (an error, not a miss), so callers check ids from outside before querying.
MAX_ID = 2**31 - 1


def is_valid_id(value: int) -> bool:
    return 1 <= value <= MAX_ID


# Points, balances and their totals: 64-bit, so sums of bounded amounts never overflow
# (SQLite's INTEGER is 64-bit already).
Points = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


# What a database that is down, restarting or out of connections raises, by whichever layer.
_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused / reset / unreachable, raised by the drivers as is
    TimeoutError,  # asyncpg's command_timeout, a bounded wait of ours
    sa.exc.OperationalError,  # SQLite's "database is locked" after its busy timeout too
    sa.exc.InterfaceError,
    sa.exc.TimeoutError,  # no pool connection came free in time
)


# MySQL's client errors for a connection that is gone: server gone away, lost during a query.
_MYSQL_LOST = (2006, 2013)
# ... and the rest of an outage: cannot connect, too many connections, a lock wait or a
# statement that ran out of time (MariaDB's max_statement_time, MySQL's max_execution_time).
_MYSQL_OUTAGE = (*_MYSQL_LOST, 2002, 2003, 1040, 1205, 1969, 3024)


def _connection_lost(error: BaseException) -> bool:
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        return True
    return _mysql_errno(error) in _MYSQL_LOST


def is_outage(exc: BaseException) -> bool:
    """Whether an error means the database cannot be reached (not that a query was wrong)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _mysql_errno(current) in _MYSQL_OUTAGE:
            return True
        if isinstance(current, _OUTAGE_ERRORS) or type(current).__name__ in (
            "CannotConnectNowError",
            "ConnectionDoesNotExistError",
            "TooManyConnectionsError",
            "QueryCanceledError",  # PostgreSQL's statement_timeout
            "LockNotAvailableError",
        ):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def is_sqlite() -> bool:
    return make_url(database.url).get_backend_name() == "sqlite"


_NAIVE_UTC = ("sqlite", *MYSQL_FAMILY)

# The column type of every moment in the migrations: microseconds on MySQL too.
TIMESTAMP = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), *MYSQL_FAMILY)


class UTCDateTimeType(sa.types.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC in and out, on every backend (SQLite hands back naive values)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        # MySQL's DATETIME keeps whole seconds unless told: microseconds, as elsewhere.
        if is_mysql(dialect.name):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC values")
        value = value.astimezone(dt.UTC)
        # SQLite compares datetimes as text, MySQL's DATETIME has no zone: both store UTC
        # without an offset.
        return value.replace(tzinfo=None) if dialect.name in _NAIVE_UTC else value

    def process_result_value(self, value: Any, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class UTCDateTime(ormar.DateTime):  # type: ignore[misc,valid-type]
    """An ormar DateTime field stored through `UTCDateTimeType`."""

    @classmethod
    def get_column_type(cls, **kwargs: Any) -> Any:
        return UTCDateTimeType()
