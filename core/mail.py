"""Mail to users (password reset, email verification) through SMTP, never blocking a request.

`Postman.post` returns at once; delivery runs as a background task bounded by
`SMTP_TIMEOUT_SECONDS`. A failed delivery is logged and counted, never raised: the person asks
again (a reset) or the link is sent anew. Until the job system exists a delivery in flight is
lost if the process dies; with no `SMTP_URL`, nothing is sent at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from core import metrics
from core.settings import MailSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    body: str


class Mailer(Protocol):
    async def send(self, mail: Mail) -> None: ...


@dataclass(frozen=True, slots=True)
class SmtpServer:
    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool | None  # None: when the server offers it

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP_URL is smtp://[user:password@]host[:port] or smtps://…")
        options = parse_qs(parts.query)
        start_tls: bool | None = None
        if "starttls" in options:
            start_tls = options["starttls"][-1].lower() in ("1", "true", "yes")
        use_tls = parts.scheme == "smtps"
        return cls(
            hostname=parts.hostname,
            port=parts.port or (465 if use_tls else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=use_tls,
            start_tls=False if use_tls else start_tls,
        )


class SmtpMailer:
    def __init__(self, server: SmtpServer, *, sender: str, timeout: float) -> None:
        self.server = server
        self.sender = sender
        self.timeout = timeout

    async def send(self, mail: Mail) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message.set_content(mail.body)
        server = self.server
        await aiosmtplib.send(
            message,
            hostname=server.hostname,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.use_tls,
            start_tls=server.start_tls,
            timeout=self.timeout,
        )


class Postman:
    """Sends mail in the background; `None` mailer: mail is switched off."""

    def __init__(self, mailer: Mailer | None, *, timeout: float = 10.0) -> None:
        self.mailer = mailer
        self.timeout = timeout
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self.mailer is not None

    def post(self, compose: Callable[[], Awaitable[Mail]], *, what: str) -> None:
        """Compose (it may write, e.g. the token a link carries) and send in the background."""
        if self.mailer is None:
            return
        task = asyncio.get_running_loop().create_task(self._deliver(self.mailer, compose, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self, mailer: Mailer, compose: Callable[[], Awaitable[Mail]], what: str
    ) -> None:
        try:
            mail = await compose()
            async with asyncio.timeout(self.timeout + 1):
                await mailer.send(mail)
        except Exception as exc:  # logged without the address: it is personal data
            metrics.outside_failures.labels("smtp", type(exc).__name__).inc()
            log.warning("could not send the %s mail: %s: %s", what, type(exc).__name__, exc)

    async def drain(self) -> None:
        """Wait for deliveries in flight (at shutdown, and in tests)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.timeout + 2)

    async def close(self) -> None:
        await self.drain()
        for task in set(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def build_postman(settings: MailSettings) -> Postman:
    if settings.smtp_url is None:
        return Postman(None)
    server = SmtpServer.from_url(settings.smtp_url.get_secret_value())
    mailer = SmtpMailer(server, sender=settings.mail_from, timeout=settings.smtp_timeout_seconds)
    return Postman(mailer, timeout=settings.smtp_timeout_seconds)
