"""The one HTTP client of the outside services: short timeouts and a small retry policy."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import re
from collections.abc import Mapping

import httpx

from core.infra import clock

log = logging.getLogger(__name__)

# A provider that asks us to come back later than this is treated as down for now: nobody
# waits seconds for a sign-up, and the background worker has its own, longer retry.
MAX_RETRY_WAIT = 2.0
BACKOFF = 0.1


class ServiceUnreachable(Exception):
    """No HTTP answer at all (connection refused, timeout, broken reply), after retries."""

    def __init__(self, reason: str, *, timed_out: bool) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


class _RedactKeys(logging.Filter):
    """httpx logs every request URL; Hunter takes its key in the query string."""

    _key = re.compile(r"(api_key=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "api_key=" in message:
            record.msg, record.args = self._key.sub(r"\1***", message), ()
        return True


logging.getLogger("httpx").addFilter(_RedactKeys())


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds from now: delay-seconds or an HTTP date; None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:  # HTTP dates are GMT
            return None
        seconds = (moment - clock.utcnow()).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(seconds, 0.0)


def should_retry(status_code: int) -> bool:
    return status_code == 429 or status_code >= 500


class IntegrationClient:
    """Shared by every provider; created with the core and closed by `Core.stop`."""

    def __init__(
        self,
        *,
        timeout: float,
        max_retries: int,
        max_wait: float = MAX_RETRY_WAIT,
        backoff: float = BACKOFF,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.backoff = backoff
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"User-Agent": "referral-service", "Accept": "application/json"},
            follow_redirects=False,
        )

    async def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """GET with retries on connection errors, timeouts, 5xx and 429.

        Returns the last response (which may still be a 5xx or 429: the caller decides what
        that means); raises `ServiceUnreachable` when no response came back at all.
        """
        attempt = 0
        while True:
            try:
                # httpx bounds each phase; this bounds the whole exchange (a slow drip too).
                async with asyncio.timeout(self.timeout):
                    response = await self.client.get(url, params=params, headers=headers)
            except (httpx.RequestError, TimeoutError) as exc:
                timed_out = isinstance(exc, (httpx.TimeoutException, TimeoutError))
                if attempt >= self.max_retries:
                    raise ServiceUnreachable(type(exc).__name__, timed_out=timed_out) from None
                delay = self._backoff(attempt)
                log.info(
                    "%s: %s, retry %d in %.2fs", _host(url), type(exc).__name__, attempt + 1, delay
                )
            else:
                if not should_retry(response.status_code) or attempt >= self.max_retries:
                    return response
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                if wait is not None and wait > self.max_wait:
                    return response  # asked to come back much later: give up for now
                delay = wait if wait is not None else self._backoff(attempt)
                log.info(
                    "%s: HTTP %d, retry %d in %.2fs",
                    _host(url),
                    response.status_code,
                    attempt + 1,
                    delay,
                )
            attempt += 1
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        await self.client.aclose()

    def _backoff(self, attempt: int) -> float:
        # Exponential with jitter, so clients that failed together do not retry together.
        base = self.backoff * 2**attempt
        return min(base * (0.5 + random.random()), self.max_wait)  # noqa: S311


def _host(url: str) -> str:
    return httpx.URL(url).host
