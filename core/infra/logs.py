"""Logging for every process: text or JSON lines, the request or update being handled, and no
secret in any line.

Secrets are masked where lines are written (the formatter), so a secret that reaches a message
by any path (an exception text with a URL, a library's debug line) is still never written:
the configured secret values by name, and anything shaped like a Telegram bot token.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterable
from contextvars import ContextVar

from core.infra.settings import Settings

# What is being handled right now: set by the API per request, by the bot per update.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
update_id: ContextVar[int | None] = ContextVar("update_id", default=None)

# "<bot id>:<secret>" as @BotFather hands it out, alone or inside a Bot API URL.
_BOT_TOKEN = re.compile(r"\d{5,20}:[A-Za-z0-9_-]{30,}")
MASK = "***"
_HANDLER_NAME = "referral-service"

# Libraries whose debug lines carry query parameters or request bodies: never below INFO.
_QUIET = {"aiosqlite": logging.INFO, "sqlalchemy.engine": logging.WARNING, "httpcore": logging.INFO}


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret, to be masked wherever it shows up."""
    candidates = [
        settings.auth.secret_key,
        settings.telegram.bot_token,
        settings.telegram.webhook_secret,
        settings.integrations.hunter_api_key,
        settings.integrations.clearbit_api_key,
        settings.mail.smtp_url,
    ]
    values = [secret.get_secret_value() for secret in candidates if secret is not None]
    return [value for value in values if len(value) >= 6]


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted(set(secrets), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _BOT_TOKEN.sub(MASK, text)


class ServiceFormatter(logging.Formatter):
    """One line a record (text or JSON), with the request or update id, secrets masked."""

    def __init__(self, *, json_lines: bool, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.json_lines = json_lines
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        context = _context()
        if not self.json_lines:
            line = super().format(record)
            if context:
                line += " [" + " ".join(f"{key}={value}" for key, value in context.items()) + "]"
            return self.redact(line)
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **context,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(entry, ensure_ascii=False, default=str))


def _context() -> dict[str, object]:
    context: dict[str, object] = {}
    if (current_request := request_id.get()) is not None:
        context["request_id"] = current_request
    if (current_update := update_id.get()) is not None:
        context["update_id"] = current_update
    return context


def configure_logging(settings: Settings) -> Redactor:
    """Set up the root logger for this process; returns the redactor it masks lines with."""
    redact = Redactor(secret_values(settings))
    handler = logging.StreamHandler()
    handler.setFormatter(ServiceFormatter(json_lines=settings.log_format == "json", redact=redact))
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:  # configured again: replace our own, keep others
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name, floor in _QUIET.items():
        logger = logging.getLogger(name)
        logger.setLevel(max(floor, logger.getEffectiveLevel()))
    return redact
