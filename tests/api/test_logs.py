"""Log lines: never a secret, a hash or a password at any level; JSON lines with the request id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.front import Front
from core.infra import logs
from core.infra.settings import Settings
from tests.conftest import API, PASSWORD

BOT_TOKEN = "123456789:AAE" + "x" * 32


@pytest.fixture
def captured(settings: Settings) -> Iterator[tuple[io.StringIO, Settings]]:
    """Everything the process logs at DEBUG, through the service's own formatter."""
    debug = settings.model_copy(update={"log_level": "DEBUG", "log_format": "json"})
    debug.telegram = debug.telegram.model_copy(update={"bot_token": SecretStr(BOT_TOKEN)})
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("", *logs._QUIET)}
    logs.configure_logging(debug)
    handler = next(h for h in root.handlers if h.get_name() == logs._HANDLER_NAME)
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    handler.setStream(stream)
    try:
        yield stream, debug
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


async def test_debug_logs_hold_no_hash_password_or_secret(
    client: httpx.AsyncClient, captured: tuple[io.StringIO, Settings]
) -> None:
    stream, settings = captured
    email = "secretive.person@example.com"
    registered = await client.post(
        f"{API}/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert registered.status_code == 201
    token = await client.post(f"{API}/auth/token", data={"username": email, "password": PASSWORD})
    assert token.status_code == 200
    logging.getLogger("aiogram").error("GET https://api.telegram.org/bot%s/getUpdates", BOT_TOKEN)
    logging.getLogger("test").debug("debug line")
    output = stream.getvalue()
    assert "debug line" in output  # DEBUG was on
    assert "$argon2" not in output
    assert PASSWORD not in output
    assert email not in output
    assert BOT_TOKEN not in output
    assert BOT_TOKEN.split(":")[1] not in output
    assert settings.auth.secret_key.get_secret_value() not in output
    assert token.json()["refresh_token"] not in output


async def test_json_lines_carry_the_request_id(captured: tuple[io.StringIO, Settings]) -> None:
    """A line logged while a request is handled names that request, as the client sent it."""
    stream, _ = captured

    async def endpoint(request: Request) -> JSONResponse:
        logging.getLogger("test").warning("inside a request")
        return JSONResponse({})

    app = Front(Starlette(routes=[Route("/", endpoint)]), request_timeout=5)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/", headers={"X-Request-ID": "req-42"})
    assert response.headers["x-request-id"] == "req-42"
    entries = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    entry = next(e for e in entries if e["message"] == "inside a request")
    assert entry["request_id"] == "req-42"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "test"


def test_redactor_masks_configured_secrets_and_bot_tokens() -> None:
    redact = logs.Redactor(["hunter-key-123"])
    assert redact("url?api_key=hunter-key-123&x=1") == "url?api_key=***&x=1"
    assert redact(f"/bot{BOT_TOKEN}/getMe") == "/bot***/getMe"
