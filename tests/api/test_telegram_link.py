"""One-time links that attach a Telegram chat to an API account."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from core.infra import clock
from core.infra.security import token_digest
from core.users.models import AccountToken, User
from tests.api.support import assert_problem, assert_utc
from tests.conftest import API

LINK = re.compile(r"https://t\.me/referral_test_bot\?start=link_([A-Za-z0-9_-]+)")


async def test_create_a_link(client, user):
    ann, headers = await user("ann@example.com")
    response = await client.post(f"{API}/users/me/telegram-link", headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"url", "expires_at"}
    match = LINK.fullmatch(body["url"])
    assert match, body["url"]
    payload = "link_" + match.group(1)
    assert len(payload) <= 64  # Telegram's limit for a /start payload
    expires_at = assert_utc(body["expires_at"])
    lifetime = expires_at - clock.utcnow()
    assert dt.timedelta(minutes=14) < lifetime <= dt.timedelta(minutes=15)

    # Stored as a digest only, for this user, once.
    (row,) = await AccountToken.objects.filter(purpose="telegram_link").all()
    assert row.user.id == ann["id"]
    assert row.token_hash == token_digest(match.group(1))
    assert match.group(1) not in row.token_hash
    assert row.expires_at == expires_at
    assert row.used_at is None


async def test_each_link_is_new(client, user):
    _, headers = await user("ann@example.com")
    urls = {
        (await client.post(f"{API}/users/me/telegram-link", headers=headers)).json()["url"]
        for _ in range(2)
    }
    assert len(urls) == 2
    assert await AccountToken.objects.filter(purpose="telegram_link").count() == 2


async def test_already_linked(client, user):
    ann, headers = await user("ann@example.com")
    await User.objects.filter(id=ann["id"]).update(telegram_id=777000)
    response = await client.post(f"{API}/users/me/telegram-link", headers=headers)
    assert_problem(response, 409, "telegram_already_linked")
    assert await AccountToken.objects.filter(purpose="telegram_link").count() == 0
    me = (await client.get(f"{API}/users/me", headers=headers)).json()
    assert me["telegram_id"] == 777000


async def test_link_needs_a_token(client):
    response = await client.post(f"{API}/users/me/telegram-link")
    assert_problem(response, 401, "not_authenticated")


@pytest.fixture
async def botless_client(core, settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second API app over the same database, with no bot username configured."""
    from api.main import create_app

    telegram = settings.telegram.model_copy(update={"bot_username": None})
    botless = settings.model_copy(update={"telegram": telegram})
    async with LifespanManager(create_app(botless)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_no_bot_configured(client, botless_client, user):
    _, headers = await user("ann@example.com")
    response = await botless_client.post(f"{API}/users/me/telegram-link", headers=headers)
    assert_problem(response, 503, "bot_not_configured")
    assert await AccountToken.objects.filter(purpose="telegram_link").count() == 0

    # Without a bot, codes work and simply have no Telegram link.
    response = await botless_client.post(
        f"{API}/referral-codes",
        json={"expires_at": (clock.utcnow() + dt.timedelta(days=1)).isoformat()},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["telegram_link"] is None
