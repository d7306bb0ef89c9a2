"""Login, access tokens, and refresh tokens with rotation and reuse detection."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from core import clock, security
from core.auth.errors import InvalidCredentials, InvalidRefreshToken, NotAuthenticated
from core.auth.models import RefreshToken
from core.db import database, is_valid_id
from core.errors import InvalidInput
from core.settings import AuthSettings
from core.users.emails import MAX_EMAIL_LENGTH, normalize_email
from core.users.models import User

_tokens = RefreshToken.ormar_config.table


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class AuthService:
    def __init__(self, settings: AuthSettings) -> None:
        self._secret = settings.secret_key.get_secret_value()
        self._access_lifetime = dt.timedelta(minutes=settings.access_token_minutes)
        self._refresh_lifetime = dt.timedelta(days=settings.refresh_token_days)

    async def authenticate(self, *, email: str, password: str) -> User:
        # The spelling sign-up stored (an IDN domain is stored decoded), so an account signs in
        # with the address it registered with; what is no email (a NUL, an absurd length,
        # which PostgreSQL would refuse) matches no one.
        try:
            stored = normalize_email(email) if len(email) <= MAX_EMAIL_LENGTH else None
        except InvalidInput:
            stored = None
        user = await User.objects.get_or_none(email=stored) if stored else None
        # Verify even for an unknown email, so timing does not tell which emails exist.
        valid = await security.verify_password(password, user.password_hash if user else None)
        if user is None or not valid:
            raise InvalidCredentials()
        return user

    async def issue_tokens(self, *, user_id: int, family: str | None = None) -> TokenPair:
        refresh = security.new_opaque_token()
        async with database.transaction(), database.connection() as connection:
            await connection.execute(self._new_refresh_row(user_id, refresh, family))
        return self._pair(user_id, refresh)

    async def refresh(self, *, refresh_token: str) -> TokenPair:
        """Trade a refresh token for a new pair; each refresh token works once.

        Spending the old token and storing its successor are one transaction, and the spend
        locks the old row: a second use of the same token waits for that transaction, then
        finds the token used and revokes the family, successor included.
        """
        digest = security.token_digest(refresh_token)
        now = clock.utcnow()
        spend = (
            sa.update(_tokens)
            .where(
                _tokens.c.token_hash == digest,
                _tokens.c.used_at.is_(None),
                _tokens.c.revoked_at.is_(None),
                _tokens.c.expires_at > now,
            )
            .values(used_at=now)
            .returning(_tokens.c.user_id, _tokens.c.family)
        )
        refresh = security.new_opaque_token()
        async with database.transaction(), database.connection() as connection:
            spent = (await connection.execute(spend)).first()
            if spent is not None:
                await connection.execute(
                    self._new_refresh_row(spent.user_id, refresh, spent.family)
                )
            else:
                await connection.execute(_revoke_family_of_used(digest, now))
        if spent is None:
            raise InvalidRefreshToken()
        return self._pair(spent.user_id, refresh)

    def _new_refresh_row(self, user_id: int, refresh: str, family: str | None) -> sa.Insert:
        now = clock.utcnow()
        return sa.insert(_tokens).values(
            user_id=user_id,
            token_hash=security.token_digest(refresh),
            family=family or secrets.token_hex(16),
            created_at=now,
            expires_at=now + self._refresh_lifetime,
        )

    def _pair(self, user_id: int, refresh: str) -> TokenPair:
        access = security.create_access_token(
            user_id=user_id, secret=self._secret, lifetime=self._access_lifetime
        )
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            expires_in=int(self._access_lifetime.total_seconds()),
        )

    async def user_from_access_token(self, token: str) -> User:
        user_id = security.decode_access_token(token, secret=self._secret)
        known = user_id is not None and is_valid_id(user_id)
        user = await User.objects.get_or_none(id=user_id) if known else None
        if user is None:
            raise NotAuthenticated()
        return user


def _revoke_family_of_used(digest: str, now: dt.datetime) -> sa.Update:
    """A used token presented again means it leaked: end every token of its family."""
    family_of_used = (
        sa.select(_tokens.c.family)
        .where(_tokens.c.token_hash == digest, _tokens.c.used_at.is_not(None))
        .scalar_subquery()
    )
    return (
        sa.update(_tokens)
        .where(_tokens.c.family == family_of_used, _tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
