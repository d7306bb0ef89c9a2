"""Build the configured outside services: each one only when its API key is set."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from core.infra.settings import IntegrationSettings
from core.integrations.clearbit import ClearbitEnricher
from core.integrations.enrichment import EnrichmentJobs
from core.integrations.http import IntegrationClient
from core.integrations.hunter import HunterVerifier
from core.jobs.queue import JobQueue
from core.referrals.service import ReferralService


@dataclass
class Integrations:
    http: IntegrationClient | None = None
    verifier: HunterVerifier | None = None
    enrichment: EnrichmentJobs | None = None

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.aclose()


def build_integrations(
    settings: IntegrationSettings, *, referrals: ReferralService, jobs: JobQueue
) -> Integrations:
    hunter_key, clearbit_key = _key(settings.hunter_api_key), _key(settings.clearbit_api_key)
    if hunter_key is None and clearbit_key is None:
        return Integrations()
    http = IntegrationClient(timeout=settings.timeout_seconds, max_retries=settings.max_retries)
    integrations = Integrations(http=http)
    if hunter_key is not None:
        integrations.verifier = HunterVerifier(
            http=http,
            base_url=settings.hunter_base_url,
            api_key=hunter_key,
            deadline=settings.hunter_deadline_seconds,
        )
    if clearbit_key is not None:
        integrations.enrichment = EnrichmentJobs(
            enricher=ClearbitEnricher(
                http=http, base_url=settings.clearbit_base_url, api_key=clearbit_key
            ),
            referrals=referrals,
            jobs=jobs,
        )
    return integrations


def _key(value: SecretStr | None) -> SecretStr | None:
    """A blank key (`HUNTER_API_KEY=` in .env) means the provider is off."""
    return value if value is not None and value.get_secret_value().strip() else None
