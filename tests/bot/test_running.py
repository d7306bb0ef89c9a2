"""`python -m bot`: the token check, long polling, and the webhook server."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from bot.__main__ import run
from bot.app import create_bot, create_dispatcher
from bot.webhook import SECRET_HEADER, create_webhook_app
from core.container import Core
from core.infra import clock
from core.infra.settings import Settings
from core.operators.service import Operator
from tests.bot.conftest import LAX
from tests.bot.fake_telegram import TOKEN, FakeTelegram
from tests.jobs import chat_messages

ROOT = Path(__file__).resolve().parents[2]


def _update(update_id: int, user_id: int, text: str, lang: str = "en") -> dict:
    message = {
        "message_id": update_id,
        "date": int(time.time()),
        "chat": {"id": user_id, "type": "private"},
        "from": {"id": user_id, "is_bot": False, "first_name": "Ann", "language_code": lang},
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"update_id": update_id, "message": message}


@pytest.mark.parametrize(
    ("token", "complaint"),
    [
        (None, "TELEGRAM_BOT_TOKEN is not set"),
        ("", "TELEGRAM_BOT_TOKEN is not set"),
        ("not-a-token", "TELEGRAM_BOT_TOKEN is malformed"),
        ("123456:short", "TELEGRAM_BOT_TOKEN is malformed"),
        ("abc:" + "x" * 35, "TELEGRAM_BOT_TOKEN is malformed"),
    ],
)
def test_a_missing_or_malformed_token_stops_with_one_line(
    token: str | None, complaint: str
) -> None:
    env = dict(os.environ)
    env.pop("TELEGRAM_BOT_TOKEN", None)
    if token is not None:
        env["TELEGRAM_BOT_TOKEN"] = token

    done = _run_bot(env)

    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert complaint in lines[0]
    assert "Traceback" not in done.stderr


REAL_LOOKING_TOKEN = "123456789:AAE" + "k" * 32


def _run_bot(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m bot` with this environment (and no .env), to its end."""
    return subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=ROOT,
        env={**env, "ENV_FILE": "none"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    "api_url",
    [
        "not-a-url",
        f"https://api.telegram.org/bot{REAL_LOOKING_TOKEN}",
        "ftp://api.telegram.org",
        "https://",
        f"http://127.0.0.1:9/bot{REAL_LOOKING_TOKEN}/",
    ],
)
def test_a_bad_api_url_stops_with_one_line_and_no_token(api_url: str) -> None:
    done = _run_bot(
        {**os.environ, "TELEGRAM_BOT_TOKEN": REAL_LOOKING_TOKEN, "TELEGRAM_API_URL": api_url}
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "TELEGRAM_API_URL" in lines[0]
    assert REAL_LOOKING_TOKEN not in done.stderr
    assert REAL_LOOKING_TOKEN.split(":")[1] not in done.stderr + done.stdout


def test_an_unreachable_bot_api_is_one_line_without_the_token() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": REAL_LOOKING_TOKEN,
        "TELEGRAM_API_URL": f"http://127.0.0.1:{closed}",
    }
    done = _run_bot(env, timeout=120)
    assert done.returncode == 2
    assert "cannot reach the Bot API" in done.stderr
    assert "Traceback" not in done.stderr
    assert REAL_LOOKING_TOKEN.split(":")[1] not in done.stderr + done.stdout


def _settings_for(settings: Settings, fake: FakeTelegram, **telegram: object) -> Settings:
    return settings.model_copy(
        update={"telegram": settings.telegram.model_copy(update={"api_url": fake.url, **telegram})}
    )


async def test_long_polling_serves_updates(
    core: Core, settings: Settings, fake: FakeTelegram
) -> None:
    fake.queue_update(_update(1, 101, "/start", lang="ru"))
    task = asyncio.create_task(run(_settings_for(settings, fake), TOKEN, handle_signals=False))
    try:
        welcome = await fake.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 101)
        assert "Добро пожаловать, Ann!" in welcome.text
        fake.queue_update(_update(2, 101, "/code", lang="ru"))
        await fake.wait_for(lambda c: "нет активного" in c.text)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    methods = [c.method for c in fake.calls]
    assert methods[0] == "getMe"
    assert "deleteWebhook" in methods
    commands = {
        str(c.params.get("language_code")): c.params["commands"]
        for c in fake.calls
        if c.method == "setMyCommands"
    }
    assert set(commands) == {"None", "ru"}
    assert [c["command"] for c in commands["None"]] == [
        "start",
        "code",
        "newcode",
        "referrals",
        "stats",
        "top",
        "rewards",
        "invite",
        "help",
        "cancel",
    ]
    assert commands["ru"][1]["description"] == "Ваш реферальный код"
    polls = [c for c in fake.calls if c.method == "getUpdates"]
    # No campaign names a chat: no chat_member or chat_join_request updates asked for.
    assert set(polls[0].params["allowed_updates"]) == {"message", "callback_query", "inline_query"}


async def test_a_campaign_naming_a_chat_has_the_bot_ask_for_its_joins(
    core: Core, settings: Settings, fake: FakeTelegram
) -> None:
    """And the bot checks that chat at once (the campaign's job, run by the bot's process)."""
    fake.add_chat(-1001, "Club")
    await core.campaigns.create(
        operator=Operator(), key="club", name="Club", rules={"telegram": {"chat_id": -1001}}
    )
    fake.queue_update(_update(1, 101, "/start"))  # a poll with updates is recorded
    task = asyncio.create_task(run(_settings_for(settings, fake), TOKEN, handle_signals=False))
    try:
        await fake.wait_for(lambda c: c.method == "getChatMember", within=15)
        poll = await fake.wait_for(
            lambda c: c.method == "getUpdates" and "allowed_updates" in c.params
        )
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert {"chat_member", "chat_join_request"} <= set(poll.params["allowed_updates"])
    assert (await core.invites.chat_statuses([-1001]))[-1001].status == "ready"


async def test_the_bot_process_sends_the_chat_messages_the_api_queued(
    core: Core, settings: Settings, fake: FakeTelegram
) -> None:
    fake.queue_update(_update(1, 101, "/start"))
    fast = settings.model_copy(
        update={"jobs": settings.jobs.model_copy(update={"poll_seconds": 0.05})}
    )
    task = asyncio.create_task(run(_settings_for(fast, fake), TOKEN, handle_signals=False))
    try:
        await fake.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 101)
        ann = await core.users.by_telegram_id(101)
        assert ann is not None
        code = await core.referrals.create_code(
            owner=ann, expires_at=clock.utcnow() + dt.timedelta(days=7)
        )
        # An API sign-up (this process, as the API's would) queues the message; the bot sends it.
        await core.accounts.sign_up(
            email="zed@example.com",
            password="long enough",
            full_name="Zed",
            referral_code=code.code,
        )
        note = await fake.wait_for(lambda c: c.chat_id == 101 and "Zed" in (c.text or ""))
        assert note.text == "Zed joined with your code; you now have 1 referral."
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (job,) = await chat_messages()
    assert (job.status, job.attempts) == ("succeeded", 1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_webhook_mode_registers_and_checks_the_secret(
    core: Core, settings: Settings, fake: FakeTelegram
) -> None:
    port = _free_port()
    configured = _settings_for(
        settings,
        fake,
        webhook_url="https://bot.example.com/telegram/hook",
        webhook_secret=SecretStr("s3cret-token_value"),
        host="127.0.0.1",
        port=port,
    )
    task = asyncio.create_task(run(configured, TOKEN, handle_signals=False))
    try:
        registered = await fake.wait_for(lambda c: c.method == "setWebhook")
        assert registered.params["url"] == "https://bot.example.com/telegram/hook"
        assert registered.params["secret_token"] == "s3cret-token_value"
        url = f"http://127.0.0.1:{port}/telegram/hook"
        async with httpx.AsyncClient() as http:
            for headers in ({}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: ""}):
                refused = await http.post(url, json=_update(1, 101, "/start"), headers=headers)
                assert refused.status_code == 403
            accepted = await http.post(
                url, json=_update(2, 101, "/start"), headers={SECRET_HEADER: "s3cret-token_value"}
            )
            assert accepted.status_code == 200
        welcome = await fake.wait_for(lambda c: c.method == "sendMessage" and c.chat_id == 101)
        assert "Welcome, Ann!" in welcome.text
        assert len([c for c in fake.calls if c.method == "sendMessage"]) == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_webhook_handler_answers_inline(
    core: Core, settings: Settings, fake: FakeTelegram
) -> None:
    """The aiohttp app alone, handling each update before it answers."""
    from aiohttp.test_utils import TestServer

    bot = create_bot(TOKEN, api_url=fake.url)  # the app closes its bot on shutdown
    dispatcher = create_dispatcher(core, rate=LAX, redis_url=settings.redis_url)
    app = create_webhook_app(dispatcher, bot, secret="abc", path="/hook", in_background=False)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with httpx.AsyncClient() as http:
            wrong = await http.post(
                str(server.make_url("/hook")),
                json=_update(1, 5, "/help"),
                headers={SECRET_HEADER: "abd"},
            )
            right = await http.post(
                str(server.make_url("/hook")),
                json=_update(2, 5, "/help"),
                headers={SECRET_HEADER: "abc"},
            )
    finally:
        await server.close()
    assert (wrong.status_code, right.status_code) == (403, 200)
    assert [c.chat_id for c in fake.calls if c.method == "sendMessage"] == [5]
