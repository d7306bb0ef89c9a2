"""Interfaces of the optional outside services; providers live beside this module."""

from __future__ import annotations

from typing import Protocol


class EmailVerifier(Protocol):
    async def verify(self, email: str) -> str | None:
        """The provider's verdict ('deliverable', 'undeliverable', 'risky', …), or None when
        it could not be asked (timeout, error): the caller lets the sign-up through."""
        ...


class EnrichmentScheduler(Protocol):
    def schedule(self, user_id: int) -> None:
        """Enrich the user's profile in the background, after the sign-up has committed."""
        ...
