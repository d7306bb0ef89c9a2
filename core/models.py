"""Every model, imported once so the metadata is complete (Alembic, tests)."""

from core.auth.models import AccountToken, RefreshToken
from core.referrals.models import ReferralCode
from core.telegram.models import Notification, TelegramLinkToken
from core.users.models import User

__all__ = [
    "AccountToken",
    "Notification",
    "ReferralCode",
    "RefreshToken",
    "TelegramLinkToken",
    "User",
]
