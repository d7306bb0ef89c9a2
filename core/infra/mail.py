"""Mail to users (password reset, email verification) through SMTP.

Mail is sent by jobs of kind `MAIL` (see `core.auth.service`), never by the request that asks
for it: each attempt is bounded by `SMTP_TIMEOUT_SECONDS` and retried on the job schedule.
With no `SMTP_URL`, nothing is queued at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from core.infra.settings import MailSettings

log = logging.getLogger(__name__)

MAIL = "mail"  # the job kind


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


def build_mailer(settings: MailSettings) -> SmtpMailer | None:
    if settings.smtp_url is None:
        return None
    server = SmtpServer.from_url(settings.smtp_url.get_secret_value())
    return SmtpMailer(server, sender=settings.mail_from, timeout=settings.smtp_timeout_seconds)
