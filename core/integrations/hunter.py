"""Email verification with Hunter's email-verifier API (https://hunter.io/api/email-verifier).

Fails open: a sign-up is refused only when Hunter positively says `undeliverable`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import SecretStr

from core.infra import metrics
from core.integrations.http import IntegrationClient, ServiceUnreachable

log = logging.getLogger(__name__)

VERDICTS = frozenset({"deliverable", "undeliverable", "risky", "unknown"})
# `result` is deprecated in favour of `status`; read `status` when `result` is missing.
_STATUS_VERDICTS = {
    "valid": "deliverable",
    "invalid": "undeliverable",
    "accept_all": "risky",
    "webmail": "risky",
    "disposable": "risky",
    "unknown": "unknown",
}


@dataclass
class VerifierStats:
    """What happened to each verification, for logs and tests."""

    verified: int = 0  # Hunter gave a verdict
    undeliverable: int = 0
    failed_open: int = 0  # no verdict: the sign-up went through unchecked
    timeouts: int = 0
    unreachable: int = 0  # connection refused or reset
    server_errors: int = 0  # 5xx after retries
    rate_limited: int = 0  # 429 after retries, or a Retry-After too long to wait
    pending: int = 0  # 202/222: Hunter had no answer in time
    rejected: int = 0  # other 4xx: bad key, no credits, refused address
    malformed: int = 0  # a 200 we could not read

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class HunterVerifier:
    def __init__(
        self, *, http: IntegrationClient, base_url: str, api_key: SecretStr, deadline: float = 5.0
    ) -> None:
        self.http = http
        self.url = base_url.rstrip("/") + "/v2/email-verifier"
        self.api_key = api_key
        self.deadline = deadline  # bounds the whole call, retries included: a sign-up waits
        self.stats = VerifierStats()

    async def verify(self, email: str) -> str | None:
        """'deliverable', 'undeliverable', 'risky' or 'unknown'; None when Hunter can't say."""
        try:
            async with asyncio.timeout(self.deadline):
                response = await self.http.get(
                    self.url, params={"email": email, "api_key": self.api_key.get_secret_value()}
                )
        except TimeoutError:
            return self._fail_open("timeouts", f"no answer within {self.deadline:g}s")
        except ServiceUnreachable as exc:
            return self._fail_open("timeouts" if exc.timed_out else "unreachable", str(exc))
        except Exception:  # a sign-up must never fail because of us talking to Hunter
            log.exception("Hunter verification crashed")
            return self._fail_open("unreachable", "client error")
        status = response.status_code
        if status == 200:
            verdict = _verdict(response.content)
            if verdict is None:
                return self._fail_open("malformed", "unreadable 200 body")
            self.stats.verified += 1
            if verdict == "undeliverable":
                self.stats.undeliverable += 1
            return verdict
        if status == 429:
            return self._fail_open("rate_limited", "HTTP 429")
        if status >= 500:
            return self._fail_open("server_errors", f"HTTP {status}")
        if 200 < status < 300:
            return self._fail_open("pending", f"HTTP {status}")
        if status in (401, 403):
            log.error("Hunter refused our API key (HTTP %d): check HUNTER_API_KEY", status)
        return self._fail_open("rejected", f"HTTP {status}")

    def _fail_open(self, counter: str, reason: str) -> str | None:
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        self.stats.failed_open += 1
        metrics.outside_failures.labels("hunter", counter).inc()
        log.warning("Hunter verification skipped (%s): sign-up allowed unchecked", reason)
        return None


def _verdict(body: bytes) -> str | None:
    try:
        document: Any = json.loads(body)
    except ValueError:
        return None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict):
        return None
    result = data.get("result")
    if result in VERDICTS:
        return str(result)
    return _STATUS_VERDICTS.get(str(data.get("status")))
