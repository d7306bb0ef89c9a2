"""The sender's account, made when a handler needs one (imported by the middlewares and the
handlers alike, so it sits outside both)."""

from __future__ import annotations

from core.container import Core
from core.telegram.service import TelegramProfile
from core.users.models import User


async def ensure_account(core: Core, profile: TelegramProfile, account: User | None) -> User:
    """The sender's account; someone who skipped /start gets one without a referrer (a handler
    that always needs it is flagged `NEEDS_ACCOUNT` instead)."""
    if account is not None:
        return account
    user, _claimed = await core.accounts.sign_up_telegram(
        telegram_id=profile.telegram_id,
        full_name=profile.full_name,
        username=profile.username,
        language_code=profile.language_code,
    )
    return user
