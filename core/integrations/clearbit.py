"""Profile enrichment with Clearbit's combined API (person and company by email)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import SecretStr

from core.infra import metrics
from core.integrations.base import Enrichment, Outcome, Profile
from core.integrations.http import IntegrationClient, ServiceUnreachable

log = logging.getLogger(__name__)

# Column sizes of core.users.models.User.
_LIMITS = {"full_name": 100, "company": 200, "job_title": 200, "location": 200}
_MAX_URL = 500


@dataclass
class EnricherStats:
    found: int = 0
    not_found: int = 0
    queued: int = 0  # 202: Clearbit is looking it up
    failed: int = 0  # refused for good (422, other 4xx)
    timeouts: int = 0
    unreachable: int = 0
    server_errors: int = 0  # 5xx or 429 after retries
    unauthorized: int = 0  # 401/402/403: the key, not the person; retried later
    malformed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class ClearbitEnricher:
    def __init__(self, *, http: IntegrationClient, base_url: str, api_key: SecretStr) -> None:
        self.http = http
        self.url = base_url.rstrip("/") + "/v2/combined/find"
        self.api_key = api_key
        self.stats = EnricherStats()

    async def find(self, email: str) -> Enrichment:
        try:
            response = await self.http.get(
                self.url,
                params={"email": email},
                headers={"Authorization": f"Bearer {self.api_key.get_secret_value()}"},
            )
        except ServiceUnreachable as exc:
            return self._retry("timeouts" if exc.timed_out else "unreachable", str(exc))
        except Exception:
            log.exception("Clearbit lookup crashed")
            return self._retry("unreachable", "client error")
        status = response.status_code
        if status == 200:
            profile = _profile(response.content)
            if profile is None:
                return self._retry("malformed", "unreadable 200 body")
            if profile == Profile():
                self.stats.not_found += 1
                return Enrichment(Outcome.NOT_FOUND)
            self.stats.found += 1
            return Enrichment(Outcome.FOUND, profile)
        if status == 202:
            self.stats.queued += 1
            return Enrichment(Outcome.QUEUED)
        if status == 404:
            self.stats.not_found += 1
            return Enrichment(Outcome.NOT_FOUND)
        if status == 429 or status >= 500:
            return self._retry("server_errors", f"HTTP {status}")
        if status in (401, 402, 403):
            log.error("Clearbit refused our API key (HTTP %d): check CLEARBIT_API_KEY", status)
            return self._retry("unauthorized", f"HTTP {status}")
        self.stats.failed += 1
        log.info("Clearbit refused the lookup (HTTP %d)", status)
        return Enrichment(Outcome.FAILED)

    def _retry(self, counter: str, reason: str) -> Enrichment:
        metrics.outside_failures.labels("clearbit", counter).inc()
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        log.warning("Clearbit enrichment postponed (%s)", reason)
        return Enrichment(Outcome.RETRY)


def _profile(body: bytes) -> Profile | None:
    """The fields we keep from a combined response; None when the body is not one."""
    try:
        document: Any = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or not ({"person", "company"} & document.keys()):
        return None
    person = _object(document.get("person"))
    company = _object(document.get("company"))
    name = _object(person.get("name"))
    employment = _object(person.get("employment"))
    geo = _object(person.get("geo"))
    full_name = _text(name.get("fullName")) or _join(name.get("givenName"), name.get("familyName"))
    location = _text(person.get("location")) or _join(
        geo.get("city"), geo.get("state"), geo.get("country"), separator=", "
    )
    return Profile(
        full_name=_clip("full_name", full_name),
        company=_clip("company", _text(employment.get("name")) or _text(company.get("name"))),
        job_title=_clip("job_title", _text(employment.get("title"))),
        location=_clip("location", location),
        avatar_url=_url(person.get("avatar")),
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _join(*parts: Any, separator: str = " ") -> str | None:
    texts = [text for text in map(_text, parts) if text]
    return separator.join(texts) or None


def _clip(field: str, value: str | None) -> str | None:
    return value[: _LIMITS[field]] if value else None


def _url(value: Any) -> str | None:
    # A cut URL is a broken link: drop it rather than store part of it.
    text = _text(value)
    if text and text.startswith(("https://", "http://")) and len(text) <= _MAX_URL:
        return text
    return None
