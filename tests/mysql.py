"""A plain asyncmy connection to the MariaDB/MySQL server of a URL, for what the tests do
beside the service: drop and create databases, hold locks, end connections."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL, make_url


async def mysql_connect(url: str | URL, *, to_database: bool = False) -> Any:
    """The server's connection (autocommit), in the URL's database when `to_database`."""
    import asyncmy

    parsed = make_url(url)
    options: dict[str, Any] = {
        "host": parsed.host,
        "port": parsed.port or 3306,
        "user": parsed.username,
        "password": parsed.password or "",
        "autocommit": True,
    }
    if to_database:
        options["database"] = parsed.database
    return await asyncmy.connect(**options)


async def mysql_run(url: str | URL, *statements: str) -> None:
    """Run `statements` on the server, one after another, outside any database."""
    connection = await mysql_connect(url)
    try:
        async with connection.cursor() as cursor:
            for statement in statements:
                await cursor.execute(statement)
    finally:
        connection.close()
