"""The `data` of each event: the API's own shape of the thing (docs/program.md, "Webhooks")."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from core.referrals.models import ReferralCode
from core.users.models import Account

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# An event's `data`: a dict, or a dataclass (turned into one only when an endpoint wants it).
EventData: TypeAlias = "dict[str, Any] | DataclassInstance"


class Events(Protocol):
    async def emit(self, event_type: str, data: EventData) -> None: ...


class NoEvents:
    """For a core built without webhooks (a few unit tests)."""

    async def emit(self, event_type: str, data: EventData) -> None:
        return None


def user_data(user: Account) -> dict[str, Any]:
    """`User`, as `GET /users/me` shows it."""
    return {
        "id": user.id,
        "email": user.email,
        "full_name": user.full_name,
        "referrer_id": user.referrer_id,
        "telegram_id": user.telegram_id,
        "created_at": user.created_at,
        "is_superuser": user.is_superuser,
        "email_verified": user.email_verified,
        "company": user.company,
        "job_title": user.job_title,
        "location": user.location,
        "avatar_url": user.avatar_url,
        "enrichment_status": user.enrichment_status,
        "blocked": user.blocked_at is not None,
    }


def code_data(code: ReferralCode, *, deep_link: Callable[[str], str | None]) -> dict[str, Any]:
    """`ReferralCode` plus `owner_id`."""
    return {
        "code": code.code,
        "created_at": code.created_at,
        "expires_at": code.expires_at,
        "max_uses": code.max_uses,
        "uses": code.uses,
        "telegram_link": deep_link(code.code),
        "owner_id": code.owner.id,
    }
