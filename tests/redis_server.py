"""A private redis-server a test can stop and restart, and a TCP proxy that can cut or slow it.

Both run on free loopback ports, so the cache tests need no shared Redis and run the same
under `make test` and `make test-services`. On a machine without redis-server (`make test`
needs only Python), the tests that need one are skipped; `make test-services` needs Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time

import pytest

REDIS_SERVER = shutil.which("redis-server") or shutil.which("/usr/bin/redis-server")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_for_port(port: int, *, up: bool, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if not up:
                return
        else:
            writer.close()
            if up:
                return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"port {port} did not come {'up' if up else 'down'}")


class RedisServer:
    """`redis-server` without persistence on a free port; `stop` kills it like a crash."""

    def __init__(self) -> None:
        if REDIS_SERVER is None:
            pytest.skip("redis-server is not installed (make test-services runs this)")
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._process = _spawn_redis(self.port)
        await wait_for_port(self.port, up=True)

    async def stop(self) -> None:
        if self._process is not None:
            _kill(self._process)
            self._process = None
        await wait_for_port(self.port, up=False)


def _spawn_redis(port: int) -> subprocess.Popen[bytes]:
    options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return subprocess.Popen(  # noqa: S603 - our own fixed arguments
        [str(REDIS_SERVER), *options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()  # like a crash: no shutdown, no goodbye to the clients
    process.wait()


class Proxy:
    """Forwards a loopback port to `target`; can drop every connection, swallow, or delay."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.mode = "pass"  # "pass" | "cut" (connections closed) | "blackhole" (no answers)
        self.delay = 0.0  # seconds each chunk is held, each way
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    def cut(self) -> None:
        """Like a dead server: open connections are closed, new ones closed on arrival."""
        self.mode = "cut"
        for writer in list(self._writers):
            writer.close()

    def blackhole(self) -> None:
        """Like a hung server or a dropped route: bytes go in, nothing comes back."""
        self.mode = "blackhole"

    def restore(self) -> None:
        self.mode = "pass"
        self.delay = 0.0

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "cut":
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            for each in (writer, up_writer):
                each.close()
                self._writers.discard(each)
            self._tasks.difference_update(pumps)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if self.mode == "cut":
                    return
                if self.mode == "blackhole":
                    continue
                if self.delay:  # latency, not throughput: each chunk leaves `delay` late
                    loop.call_later(self.delay, writer.write, data)
                else:
                    writer.write(data)
                    await writer.drain()
