"""One pipelined connection to Redis for the commands on the hot path.

redis-py takes a pooled connection for every command (a lock, a checkout, its retry and
observability wrappers) and reads the reply with its pure-Python parser: on a cache hit that
was about a third of the request. Redis answers the commands of one connection in the order
they were sent, so concurrent calls can share one connection: a call queues its command and
a future, the commands queued during one turn of the event loop go out in one write, and the
replies are handed to the futures in order as they arrive. redis-py stays for everything
else (pipelines, loading scripts, the bot's storage).

Every call is bounded by `timeout`. A call that runs out of time closes the connection and
fails every call still waiting on it: a reply that never came would otherwise be handed to
the next call. The next call connects again.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any, cast

from redis.asyncio.connection import SSLConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from core.infra.deadlines import Deadlines

_INCOMPLETE = -1


class RedisPipe:
    def __init__(self, url: str, *, timeout: float) -> None:
        self._params = parse_url(url)
        self._timeout = timeout
        self._deadlines = Deadlines(timeout, tick=timeout / 5)
        self._protocol: _Protocol | None = None
        self._connecting = asyncio.Lock()

    async def call(self, *args: str | bytes | int) -> Any:
        """The reply to one command: bytes, int, str, None or a list of them; an error reply
        raises (`NoScriptError`, `ResponseError`), a lost or silent server
        `redis.exceptions.ConnectionError` or `TimeoutError`."""
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._connected()
        try:
            return await self._deadlines.bound(protocol.send(pack(args)))
        except TimeoutError:
            protocol.close()  # replies may still come: none may reach a later call
            raise

    async def close(self) -> None:
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None

    async def _connected(self) -> _Protocol:
        async with self._connecting:
            protocol = self._protocol
            if protocol is None or protocol.closed:
                async with asyncio.timeout(self._timeout):
                    protocol = await self._open()
                self._protocol = protocol
            return protocol

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        params = self._params
        protocol = _Protocol(loop)
        if "path" in params:
            await loop.create_unix_connection(lambda: protocol, params["path"])
        else:
            secure = params.get("connection_class") is SSLConnection
            await loop.create_connection(
                lambda: protocol,
                params.get("host", "localhost"),
                params.get("port", 6379),
                ssl=ssl.create_default_context() if secure else None,
            )
        try:
            if params.get("password"):
                user = [params["username"]] if params.get("username") else []
                await protocol.send(pack(("AUTH", *user, params["password"])))
            if params.get("db"):
                await protocol.send(pack(("SELECT", params["db"])))
        except BaseException:
            protocol.close()
            raise
        return protocol


def pack(args: tuple[str | bytes | int, ...]) -> bytes:
    """A command as Redis reads it: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b"%d" % arg
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def parse(buffer: bytearray, position: int) -> tuple[Any, int]:
    """One RESP2 reply from `position`: (value, position after it), or (None, _INCOMPLETE)
    while the buffer does not hold all of it yet."""
    end = buffer.find(b"\r\n", position)
    if end < 0:
        return None, _INCOMPLETE
    kind, line, position = buffer[position], bytes(buffer[position + 1 : end]), end + 2
    if kind == 0x24:  # $ bulk string
        size = int(line)
        if size < 0:
            return None, position
        if len(buffer) < position + size + 2:
            return None, _INCOMPLETE
        return bytes(buffer[position : position + size]), position + size + 2
    if kind == 0x3A:  # : integer
        return int(line), position
    if kind == 0x2A:  # * array
        count = int(line)
        if count < 0:
            return None, position
        items = []
        for _ in range(count):
            item, position = parse(buffer, position)
            if position == _INCOMPLETE:
                return None, _INCOMPLETE
            items.append(item)
        return items, position
    if kind == 0x2B:  # + simple string
        return line.decode(), position
    if kind == 0x2D:  # - error
        message = line.decode(errors="replace")
        error = NoScriptError if message.startswith("NOSCRIPT") else ResponseError
        return error(message), position
    raise RedisConnectionError(f"unexpected reply from Redis: {bytes(buffer[:40])!r}")


class _Protocol(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._out: list[bytes] = []
        self._buffer = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # An asyncio.Transport in behaviour (uvloop's transports do not subclass it).
        self._transport = cast(asyncio.Transport, transport)

    def send(self, command: bytes) -> asyncio.Future[Any]:
        """The future of this command's reply; the commands of one turn go out together."""
        if self.closed:
            raise RedisConnectionError("the connection to Redis is closed")
        future = self._loop.create_future()
        self._waiting.append(future)
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.append(command)
        return future

    def _flush(self) -> None:
        if not self.closed and self._transport is not None:
            self._transport.write(b"".join(self._out))
        self._out.clear()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        position = 0
        try:
            while position < len(buffer):
                value, after = parse(buffer, position)
                if after == _INCOMPLETE:
                    break
                position = after
                future = self._waiting.popleft()
                if not future.done():  # its caller may have left
                    if isinstance(value, ResponseError):
                        future.set_exception(value)
                    else:
                        future.set_result(value)
        except (RedisConnectionError, ValueError, IndexError):
            self.close()  # a reply nobody asked for, or one that is not RESP: start over
            return
        del buffer[:position]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiting, self._waiting = self._waiting, deque()
        for future in waiting:
            if not future.done():
                future.set_exception(RedisConnectionError(f"Redis closed the connection: {exc}"))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._transport is not None:
                self._transport.abort()
            self.connection_lost(None)
