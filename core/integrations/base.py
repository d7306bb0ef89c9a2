"""Interfaces of the optional outside services; providers live beside this module."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class EmailVerifier(Protocol):
    async def verify(self, email: str) -> str | None:
        """The provider's verdict ('deliverable', 'undeliverable', 'risky', …), or None when
        it could not be asked (timeout, error): the caller lets the sign-up through."""
        ...


class EnrichmentScheduler(Protocol):
    async def schedule(self, user_id: int) -> None:
        """Queue the enrichment of the user's profile, in the sign-up's own transaction."""
        ...


class Outcome(StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    QUEUED = "queued"  # the provider is looking it up: ask again later
    RETRY = "retry"  # the provider could not answer now (timeout, 5xx, garbage)
    FAILED = "failed"  # the provider refused this lookup for good


@dataclass(frozen=True, slots=True)
class Profile:
    full_name: str | None = None
    company: str | None = None
    job_title: str | None = None
    location: str | None = None
    avatar_url: str | None = None


@dataclass(frozen=True, slots=True)
class Enrichment:
    outcome: Outcome
    profile: Profile | None = None


class Enricher(Protocol):
    async def find(self, email: str) -> Enrichment:
        """What the provider knows about the person behind `email`; never raises."""
        ...
