"""Every model, imported once so the metadata is complete (Alembic, tests)."""

from core.auth.models import RefreshToken
from core.campaigns import tables as campaign_tables  # noqa: F401 (plain table, same metadata)
from core.jobs.models import Job
from core.operators.models import ApiKey, AuditEntry
from core.program import tables as program_tables  # noqa: F401 (plain tables, same metadata)
from core.referrals import tables as referral_tables  # noqa: F401 (plain table, same metadata)
from core.referrals.models import ReferralCode
from core.telegram import tables as telegram_tables  # noqa: F401 (plain tables, same metadata)
from core.users.models import AccountToken, User
from core.webhooks.models import WebhookDelivery, WebhookEndpoint

__all__ = [
    "AccountToken",
    "ApiKey",
    "AuditEntry",
    "Job",
    "ReferralCode",
    "RefreshToken",
    "User",
    "WebhookDelivery",
    "WebhookEndpoint",
]
