"""Email verification at sign-up, against a fake Hunter speaking Hunter's JSON."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from core.users.models import User
from tests.api.support import assert_problem
from tests.fakes.hunter import API_KEY


async def _stored_status(email: str) -> str | None:
    user = await User.objects.get(email=email)
    return user.email_status


async def test_undeliverable_address_is_refused_and_nothing_is_stored(start_app, hunter):
    app = await start_app()
    hunter.script("nobody@bounce.example", "undeliverable")

    response = await app.register("nobody@bounce.example")

    body = assert_problem(response, 422, "email_undeliverable")
    assert body["detail"]
    assert not await User.objects.filter(email="nobody@bounce.example").exists()
    [call] = hunter.calls_for("nobody@bounce.example")
    assert call.query == {"email": "nobody@bounce.example", "api_key": API_KEY}
    assert app.core.accounts.verifier.stats.undeliverable == 1
    assert app.core.accounts.verifier.stats.failed_open == 0


@pytest.mark.parametrize("verdict", ["deliverable", "risky", "unknown"])
async def test_other_verdicts_let_the_sign_up_through_and_are_stored(start_app, hunter, verdict):
    app = await start_app()
    email = f"{verdict}@example.com"
    hunter.script(email, verdict)

    response = await app.register(email)

    assert response.status_code == 201, response.text
    assert await _stored_status(email) == verdict
    assert app.core.accounts.verifier.stats.verified == 1


async def test_status_without_the_deprecated_result_field_is_understood(start_app, hunter):
    app = await start_app()
    hunter.script("gone@example.com", "status-only:invalid")
    hunter.script("fine@example.com", "status-only:valid")

    assert_problem(await app.register("gone@example.com"), 422, "email_undeliverable")
    assert (await app.register("fine@example.com")).status_code == 201
    assert await _stored_status("fine@example.com") == "deliverable"


@pytest.mark.parametrize(
    ("behaviour", "counter", "calls"),
    [
        ("500", "server_errors", 2),  # retried once (INTEGRATIONS_MAX_RETRIES=1), then open
        ("503", "server_errors", 2),
        ("429", "rate_limited", 2),
        ("429:3600", "rate_limited", 1),  # told to come back in an hour: give up at once
        ("pending", "pending", 1),
        ("garbage", "malformed", 1),
        ("no-data", "malformed", 1),
        ("slow", "timeouts", 2),
    ],
)
async def test_hunter_failures_fail_open_and_are_counted(
    start_app, hunter, behaviour, counter, calls
):
    app = await start_app()
    email = f"ann.{behaviour.replace(':', '-')}@example.com"
    hunter.script(email, behaviour)

    started = time.monotonic()
    response = await app.register(email, full_name="Ann")
    elapsed = time.monotonic() - started

    assert response.status_code == 201, response.text
    assert response.json()["email"] == email
    assert await _stored_status(email) is None  # no verdict: unchecked, not "deliverable"
    stats = app.core.accounts.verifier.stats
    assert getattr(stats, counter) == 1
    assert stats.failed_open == 1
    assert len(hunter.calls_for(email)) == calls
    assert elapsed < 1.5  # bounded by the timeout and the small retry policy


async def test_hunter_down_fails_open(start_app, hunter):
    # Nothing listens on port 9 of loopback: connection refused.
    app = await start_app(hunter_base_url="http://127.0.0.1:9")

    response = await app.register("ann@example.com")

    assert response.status_code == 201, response.text
    assert app.core.accounts.verifier.stats.unreachable == 1
    assert app.core.accounts.verifier.stats.failed_open == 1


async def test_a_wrong_key_fails_open_and_is_counted(start_app, hunter):
    app = await start_app(hunter_api_key=SecretStr("revoked"))

    response = await app.register("ann@example.com")

    assert response.status_code == 201, response.text
    assert app.core.accounts.verifier.stats.rejected == 1


async def test_a_passing_failure_is_retried(start_app, hunter):
    app = await start_app()
    hunter.script("ann@example.com", "503", "undeliverable")

    response = await app.register("ann@example.com")

    assert_problem(response, 422, "email_undeliverable")
    assert len(hunter.calls_for("ann@example.com")) == 2


async def test_retry_after_is_honoured(start_app, hunter):
    app = await start_app()
    hunter.script("ann@example.com", "429:1", "risky")

    started = time.monotonic()
    response = await app.register("ann@example.com")

    assert response.status_code == 201, response.text
    assert time.monotonic() - started >= 0.9  # waited the second Hunter asked for
    assert await _stored_status("ann@example.com") == "risky"
    assert len(hunter.calls_for("ann@example.com")) == 2


async def test_retry_after_as_an_http_date_is_honoured(start_app, hunter):
    app = await start_app()
    hunter.script("ann@example.com", "429:date+0", "deliverable")
    hunter.script("bob@example.com", "429:date+3600")

    assert (await app.register("ann@example.com")).status_code == 201
    assert await _stored_status("ann@example.com") == "deliverable"
    assert (await app.register("bob@example.com")).status_code == 201
    assert len(hunter.calls_for("bob@example.com")) == 1  # an hour away: not waited for
    assert app.core.accounts.verifier.stats.rate_limited == 1


async def test_without_a_key_hunter_is_never_asked(start_app, hunter):
    app = await start_app(with_hunter=False)

    response = await app.register("ann@example.com")

    assert response.status_code == 201, response.text
    assert app.core.accounts.verifier is None
    assert hunter.calls == []
    assert await _stored_status("ann@example.com") is None


async def test_a_sign_up_waits_for_hunter_no_longer_than_the_deadline(start_app, hunter):
    # Per request and with retries Hunter could hold the sign-up for ~2 timeouts; the
    # deadline cuts the whole verification shorter.
    app = await start_app(hunter_deadline_seconds=0.3, timeout_seconds=1.0)
    hunter.script("ann.slow@example.com", "slow")

    started = time.monotonic()
    response = await app.register("ann.slow@example.com")

    assert response.status_code == 201, response.text
    assert time.monotonic() - started < 0.9
    assert app.core.accounts.verifier.stats.timeouts == 1
    assert app.core.accounts.verifier.stats.failed_open == 1
