"""Account basics over HTTP: logout, password change, profile edit, erasure, password reset and
email verification, with a real SMTP server on 127.0.0.1 reading what the service mails."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import Message

import httpx
import pytest
from aiosmtpd.controller import Controller
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from api.main import create_app
from core.container import Core
from core.infra import clock
from core.infra.mail import MAIL
from core.infra.settings import Settings
from core.referrals.models import ReferralCode
from core.users.models import User
from tests.api.support import ahead, assert_problem, assert_validation_error
from tests.conftest import API, PASSWORD
from tests.integrations.conftest import eventually
from tests.jobs import jobs_of
from tests.redis_server import free_port

NEW_PASSWORD = "a brand new passphrase"


class Inbox:
    """An SMTP server's handler: every message it accepted, parsed."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.port = 0
        self.arrived = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        message = email.message_from_bytes(envelope.content)  # type: ignore[attr-defined]
        self._loop.call_soon_threadsafe(self._add, message)
        return "250 OK"

    def _add(self, message: Message) -> None:
        self.messages.append(message)
        self.arrived.set()

    async def next_to(self, address: str) -> Message:
        """The next mail to `address` (waits for it to arrive)."""
        while True:
            for message in self.messages:
                if message["To"] == address:
                    self.messages.remove(message)
                    return message
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 10)

    @staticmethod
    def token_in(message: Message) -> str:
        body = message.get_payload(decode=True)
        assert isinstance(body, bytes)
        found = re.search(r"token=([A-Za-z0-9_-]+)", body.decode())
        assert found, body
        return found.group(1)


@pytest.fixture
async def inbox() -> AsyncIterator[Inbox]:
    handler = Inbox()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


@asynccontextmanager
async def _app_mailing_to(
    settings: Settings, smtp_port: int
) -> AsyncIterator[tuple[httpx.AsyncClient, Core]]:
    """The API with SMTP at this port (its own core on the shared database)."""
    from core.container import build_core

    mail = settings.mail.model_copy(
        update={"smtp_url": SecretStr(f"smtp://127.0.0.1:{smtp_port}?starttls=false")}
    )
    # Its own worker sends the mail, as `make run`'s does.
    jobs = settings.jobs.model_copy(update={"in_process": "true", "poll_seconds": 0.05})
    own = build_core(settings.model_copy(update={"mail": mail, "jobs": jobs}))
    app = create_app(own.settings, core=own)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http, own


@pytest.fixture
async def mailing(
    core: Core, settings: Settings, inbox: Inbox
) -> AsyncIterator[tuple[httpx.AsyncClient, Core]]:
    async with _app_mailing_to(settings, inbox.port) as running:
        yield running


async def _sign_in(http: httpx.AsyncClient, email_address: str, password: str = PASSWORD) -> dict:
    response = await http.post(
        f"{API}/auth/token", data={"username": email_address, "password": password}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


# -- logout -------------------------------------------------------------------------------


async def test_logout_ends_the_refresh_token_family(client: httpx.AsyncClient, register) -> None:
    await register("ann@example.com")
    tokens = await _sign_in(client, "ann@example.com")
    rotated = await client.post(
        f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert rotated.status_code == 200
    other_device = await _sign_in(client, "ann@example.com")

    out = await client.post(
        f"{API}/auth/logout", json={"refresh_token": rotated.json()["refresh_token"]}
    )
    assert out.status_code == 204

    again = await client.post(
        f"{API}/auth/refresh", json={"refresh_token": rotated.json()["refresh_token"]}
    )
    assert_problem(again, 401, "invalid_refresh_token")
    # Another sign-in is another family: it goes on.
    other = await client.post(
        f"{API}/auth/refresh", json={"refresh_token": other_device["refresh_token"]}
    )
    assert other.status_code == 200
    unknown = await client.post(f"{API}/auth/logout", json={"refresh_token": "never-issued"})
    assert unknown.status_code == 204


# -- password change ----------------------------------------------------------------------


async def test_a_password_change_ends_every_token_at_once(
    client: httpx.AsyncClient, register
) -> None:
    await register("ann@example.com")
    first = await _sign_in(client, "ann@example.com")
    second = await _sign_in(client, "ann@example.com")

    changed = await client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=_bearer(first),
    )
    assert changed.status_code == 204

    for tokens in (first, second):
        me = await client.get(f"{API}/users/me", headers=_bearer(tokens))
        assert_problem(me, 401, "not_authenticated")
        refresh = await client.post(
            f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert_problem(refresh, 401, "invalid_refresh_token")
    old = await client.post(
        f"{API}/auth/token", data={"username": "ann@example.com", "password": PASSWORD}
    )
    assert_problem(old, 401, "invalid_credentials")
    fresh = await _sign_in(client, "ann@example.com", NEW_PASSWORD)
    assert (await client.get(f"{API}/users/me", headers=_bearer(fresh))).status_code == 200


async def test_a_wrong_current_password_changes_nothing(
    client: httpx.AsyncClient, register
) -> None:
    await register("ann@example.com")
    tokens = await _sign_in(client, "ann@example.com")
    refused = await client.post(
        f"{API}/users/me/password",
        json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
        headers=_bearer(tokens),
    )
    assert_problem(refused, 403, "invalid_credentials")
    assert (await client.get(f"{API}/users/me", headers=_bearer(tokens))).status_code == 200
    short = await client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=_bearer(tokens),
    )
    assert_validation_error(short, "new_password")


# -- profile ------------------------------------------------------------------------------


async def test_a_new_name_shows_in_the_public_views_at_once(
    client: httpx.AsyncClient, user
) -> None:
    _, headers = await user("ann@example.com", full_name="Ann")
    created = await client.post(
        f"{API}/referral-codes", json={"expires_at": ahead(days=7)}, headers=headers
    )
    code = created.json()["code"]
    before = await client.get(f"{API}/referral-codes/{code}")  # now cached
    assert before.json()["referrer"]["full_name"] == "Ann"

    patched = await client.patch(f"{API}/users/me", json={"full_name": "Ann Lee"}, headers=headers)
    assert patched.status_code == 200
    assert patched.json()["full_name"] == "Ann Lee"
    after = await client.get(f"{API}/referral-codes/{code}")
    assert after.json()["referrer"]["full_name"] == "Ann Lee"

    bad = await client.patch(f"{API}/users/me", json={"full_name": "A\u202eB"}, headers=headers)
    assert_validation_error(bad, "full_name")
    empty = await client.patch(f"{API}/users/me", json={"full_name": ""}, headers=headers)
    assert_validation_error(empty, "full_name")
    cleared = await client.patch(f"{API}/users/me", json={"full_name": None}, headers=headers)
    assert cleared.json()["full_name"] is None


# -- erasure ------------------------------------------------------------------------------


async def test_erasure_keeps_the_referral_but_nothing_personal(
    client: httpx.AsyncClient, user, core: Core
) -> None:
    ann, ann_headers = await user("ann@example.com", full_name="Ann")
    created = await client.post(
        f"{API}/referral-codes", json={"expires_at": ahead(days=7)}, headers=ann_headers
    )
    ann_code = created.json()["code"]
    bob, bob_headers = await user("bob@example.com", full_name="Bob", referral_code=ann_code)
    bob_code = (
        await client.post(
            f"{API}/referral-codes", json={"expires_at": ahead(days=7)}, headers=bob_headers
        )
    ).json()["code"]
    assert (await client.get(f"{API}/referral-codes/{bob_code}")).status_code == 200  # cached
    bob_tokens = await _sign_in(client, "bob@example.com")

    wrong = await client.request(
        "DELETE", f"{API}/users/me", json={"password": "nope nope"}, headers=bob_headers
    )
    assert_problem(wrong, 403, "invalid_credentials")
    assert (await User.objects.get(id=bob["id"])).email == "bob@example.com"

    erased = await client.request(
        "DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=bob_headers
    )
    assert erased.status_code == 204

    row = await User.objects.get(id=bob["id"])
    assert (row.email, row.full_name, row.password_hash, row.telegram_id) == (None,) * 4
    assert row.erased_at is not None
    assert row.referrer is not None  # Ann's count holds
    assert row.referrer.id == ann["id"]
    page = await client.get(f"{API}/users/{ann['id']}/referrals", headers=ann_headers)
    assert page.json()["total"] == 1
    assert page.json()["items"][0]["email"] is None
    assert page.json()["items"][0]["full_name"] is None
    # Tokens ended, the code closed (cache included), the email free again.
    assert_problem(
        await client.get(f"{API}/users/me", headers=bob_headers), 401, "not_authenticated"
    )
    refresh = await client.post(
        f"{API}/auth/refresh", json={"refresh_token": bob_tokens["refresh_token"]}
    )
    assert_problem(refresh, 401, "invalid_refresh_token")
    assert_problem(
        await client.get(f"{API}/referral-codes/{bob_code}"), 404, "referral_code_not_found"
    )
    assert (await ReferralCode.objects.get(code=bob_code)).closed_at is not None
    again = await client.post(
        f"{API}/auth/register", json={"email": "bob@example.com", "password": PASSWORD}
    )
    assert again.status_code == 201


# -- password reset and verification, by mail ----------------------------------------------


async def _sign_up_and_read_welcome(http: httpx.AsyncClient, inbox: Inbox, address: str) -> None:
    body = {"email": address, "password": PASSWORD}
    assert (await http.post(f"{API}/auth/register", json=body)).status_code == 201
    await inbox.next_to(address)  # the sign-up's verification mail


async def test_password_reset_by_mail(
    mailing: tuple[httpx.AsyncClient, Core], inbox: Inbox
) -> None:
    http, _ = mailing
    await _sign_up_and_read_welcome(http, inbox, "ann@example.com")
    before = await _sign_in(http, "ann@example.com")

    asked = await http.post(f"{API}/auth/password-reset", json={"email": " ANN@example.com"})
    assert asked.status_code == 202
    mail = await inbox.next_to("ann@example.com")
    assert "reset" in mail["Subject"].lower()
    token = inbox.token_in(mail)

    done = await http.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 204
    assert_problem(
        await http.get(f"{API}/users/me", headers=_bearer(before)), 401, "not_authenticated"
    )
    await _sign_in(http, "ann@example.com", NEW_PASSWORD)

    reused = await http.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert_problem(reused, 400, "invalid_reset_token")
    junk = await http.post(
        f"{API}/auth/password-reset/confirm", json={"token": "junk", "new_password": NEW_PASSWORD}
    )
    assert_problem(junk, 400, "invalid_reset_token")


async def test_a_reset_link_lasts_thirty_minutes(
    mailing: tuple[httpx.AsyncClient, Core], inbox: Inbox
) -> None:
    http, _ = mailing
    await _sign_up_and_read_welcome(http, inbox, "ann@example.com")
    await http.post(f"{API}/auth/password-reset", json={"email": "ann@example.com"})
    mail = await inbox.next_to("ann@example.com")
    token = inbox.token_in(mail)
    with clock.shift(dt.timedelta(minutes=31)):
        late = await http.post(
            f"{API}/auth/password-reset/confirm",
            json={"token": token, "new_password": NEW_PASSWORD},
        )
    assert_problem(late, 400, "invalid_reset_token")


async def test_reset_never_tells_whether_an_email_is_registered(
    mailing: tuple[httpx.AsyncClient, Core], inbox: Inbox
) -> None:
    http, _ = mailing
    for address in ("nobody@example.com", "not an email", "x" * 300):
        response = await http.post(f"{API}/auth/password-reset", json={"email": address})
        assert response.status_code == 202
        assert response.content == b""
    assert await jobs_of(MAIL) == []  # nothing was even queued
    assert inbox.messages == []


async def test_sign_up_mails_a_verification_link(
    mailing: tuple[httpx.AsyncClient, Core], inbox: Inbox
) -> None:
    http, _ = mailing
    created = await http.post(
        f"{API}/auth/register", json={"email": "cat@example.com", "password": PASSWORD}
    )
    assert created.status_code == 201
    assert created.json()["email_verified"] is False
    token = inbox.token_in(await inbox.next_to("cat@example.com"))

    verified = await http.post(f"{API}/auth/verify-email", json={"token": token})
    assert verified.status_code == 200
    assert verified.json()["email_verified"] is True
    again = await http.post(f"{API}/auth/verify-email", json={"token": token})
    assert_problem(again, 400, "invalid_verification_token")


async def test_an_smtp_server_that_is_down_never_fails_a_request(
    core: Core, settings: Settings
) -> None:
    async with _app_mailing_to(settings, free_port()) as (http, _):
        created = await http.post(
            f"{API}/auth/register", json={"email": "dan@example.com", "password": PASSWORD}
        )
        assert created.status_code == 201
        asked = await http.post(f"{API}/auth/password-reset", json={"email": "dan@example.com"})
        assert asked.status_code == 202

        async def retried() -> bool:
            jobs = await jobs_of(MAIL)
            # An attempt is counted when it is claimed: wait for its failure to be recorded.
            return len(jobs) == 2 and all(job.last_error for job in jobs)

        await eventually(retried)
        # Both mails wait for their next attempt; what went wrong is kept with them.
        for job in await jobs_of(MAIL):
            assert job.status in ("queued", "running")
            assert job.attempts >= 1
            assert "could not send" in (job.last_error or "")


async def test_without_smtp_nothing_is_sent(client: httpx.AsyncClient, core: Core) -> None:
    assert core.auth.mailer is None
    created = await client.post(
        f"{API}/auth/register", json={"email": "eve@example.com", "password": PASSWORD}
    )
    assert created.status_code == 201
    asked = await client.post(f"{API}/auth/password-reset", json={"email": "eve@example.com"})
    assert asked.status_code == 202
    assert await jobs_of(MAIL) == []
