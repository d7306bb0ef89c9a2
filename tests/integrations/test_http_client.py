"""The shared client's retry policy, against the fake Hunter on loopback."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import time
from collections.abc import AsyncIterator

import pytest

from core.infra import clock
from core.integrations.http import IntegrationClient, ServiceUnreachable, retry_after_seconds
from tests.fakes.hunter import API_KEY


@pytest.fixture
async def http() -> AsyncIterator[IntegrationClient]:
    client = IntegrationClient(timeout=0.3, max_retries=2, backoff=0.01)
    yield client
    await client.aclose()


def _verify(hunter, email: str) -> tuple[str, dict[str, str]]:
    return f"{hunter.url}/v2/email-verifier", {"email": email, "api_key": API_KEY}


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), (" 0 ", 0.0), ("-5", 0.0), ("soon", None), ("", None), (None, None)],
)
def test_retry_after_in_seconds(header, seconds):
    assert retry_after_seconds(header) == seconds


def test_retry_after_as_an_http_date():
    later = clock.utcnow() + dt.timedelta(seconds=120)
    header = email.utils.format_datetime(later.replace(microsecond=0), usegmt=True)
    assert 118 <= retry_after_seconds(header) <= 120
    past = email.utils.format_datetime(clock.utcnow() - dt.timedelta(hours=1), usegmt=True)
    assert retry_after_seconds(past) == 0.0


async def test_retries_up_to_the_limit_then_returns_the_last_answer(http, hunter):
    url, params = _verify(hunter, "ann@example.com")
    hunter.script("ann@example.com", "500")

    response = await http.get(url, params=params)

    assert response.status_code == 500
    assert len(hunter.calls_for("ann@example.com")) == 3  # one try and two retries


async def test_a_client_error_is_not_retried(http, hunter):
    url, params = _verify(hunter, "ann@example.com")

    response = await http.get(url, params={**params, "api_key": "wrong"})

    assert response.status_code == 401
    assert len(hunter.calls_for("ann@example.com")) == 1


async def test_recovers_after_a_transient_failure(http, hunter):
    url, params = _verify(hunter, "ann@example.com")
    hunter.script("ann@example.com", "503", "429:0", "deliverable")

    response = await http.get(url, params=params)

    assert response.status_code == 200
    assert response.json()["data"]["result"] == "deliverable"


async def test_a_long_retry_after_gives_up_at_once(http, hunter):
    url, params = _verify(hunter, "ann@example.com")
    hunter.script("ann@example.com", "429:30")

    started = time.monotonic()
    response = await http.get(url, params=params)

    assert response.status_code == 429
    assert time.monotonic() - started < 0.5
    assert len(hunter.calls_for("ann@example.com")) == 1


async def test_a_slow_service_times_out_after_each_retry(http, hunter):
    url, params = _verify(hunter, "ann@example.com")
    hunter.script("ann@example.com", "slow")

    started = time.monotonic()
    with pytest.raises(ServiceUnreachable) as raised:
        await http.get(url, params=params)

    assert raised.value.timed_out
    assert len(hunter.calls_for("ann@example.com")) == 3
    assert time.monotonic() - started < 1.5


async def test_a_refused_connection_is_unreachable():
    http = IntegrationClient(timeout=0.3, max_retries=1, backoff=0.01)
    try:
        with pytest.raises(ServiceUnreachable) as raised:
            await http.get("http://127.0.0.1:9/v2/email-verifier")
    finally:
        await http.aclose()
    assert not raised.value.timed_out


async def test_the_hunter_key_never_reaches_the_logs(http, hunter, caplog):
    url, params = _verify(hunter, "ann@example.com")

    with caplog.at_level(logging.INFO, logger="httpx"):
        await http.get(url, params=params)

    assert "ann%40example.com" in caplog.text or "ann@example.com" in caplog.text
    assert API_KEY not in caplog.text
    assert "api_key=***" in caplog.text
