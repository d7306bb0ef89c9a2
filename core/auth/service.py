"""Login, access tokens, and refresh tokens with rotation and reuse detection."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from core.auth.errors import (
    AccountBlocked,
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidResetToken,
    InvalidVerificationToken,
    NotAuthenticated,
    WrongPassword,
)
from core.auth.models import RefreshToken
from core.infra import clock, metrics, security
from core.infra.db import Read, database, execute, in_transaction, is_valid_id
from core.infra.emails import stored_spelling
from core.infra.mail import MAIL, Mail, Mailer
from core.infra.settings import AuthSettings
from core.jobs.queue import ClaimedJob, JobQueue, RetrySchedule
from core.jobs.worker import GiveUp, JobKind, RetryLater
from core.users import passwords, tokens
from core.users.models import ACCOUNT_COLUMNS, Account, Person, User

_tokens = RefreshToken.ormar_config.table
_users = User.ormar_config.table
# The one query of an authenticated request.
_ACCOUNT_BY_ID = Read(sa.select(*ACCOUNT_COLUMNS).where(_users.c.id == sa.bindparam("user_id")))


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


RESET_LIFETIME = dt.timedelta(minutes=30)
VERIFICATION_LIFETIME = dt.timedelta(days=2)
PASSWORD_RESET = "password_reset"  # noqa: S105 (a token purpose)
EMAIL_VERIFICATION = "email_verification"


@dataclass(frozen=True, slots=True)
class LinkMail:
    lifetime: dt.timedelta
    path: str
    subject: str
    body: str


_MAILS = {
    PASSWORD_RESET: LinkMail(
        lifetime=RESET_LIFETIME,
        path="/reset-password",
        subject="Reset your password",
        body=(
            "Someone asked to reset the password of your account. If it was you, open"
            "\n\n  {link}\n\nwithin 30 minutes, or send the token below with a new "
            "password to POST /api/v1/auth/password-reset/confirm:\n\n  {token}\n\n"
            "If it was not you, ignore this mail: nothing changes."
        ),
    ),
    EMAIL_VERIFICATION: LinkMail(
        lifetime=VERIFICATION_LIFETIME,
        path="/verify-email",
        subject="Confirm your email address",
        body=(
            "Welcome! Confirm this address by opening\n\n  {link}\n\nwithin two days, or "
            "send the token below to POST /api/v1/auth/verify-email:\n\n  {token}\n"
        ),
    ),
}


class AuthService:
    def __init__(
        self,
        settings: AuthSettings,
        *,
        jobs: JobQueue,
        mailer: Mailer | None = None,
        mail_timeout: float = 10.0,
        public_base_url: str = "http://127.0.0.1:8000",
    ) -> None:
        self._secret = settings.secret_key.get_secret_value()
        self._access_tokens = security.AccessTokens(self._secret)
        self._access_lifetime = dt.timedelta(minutes=settings.access_token_minutes)
        self._refresh_lifetime = dt.timedelta(days=settings.refresh_token_days)
        self.jobs = jobs
        self.mailer = mailer
        self.mail_timeout = mail_timeout
        self.public_base_url = public_base_url

    async def authenticate(self, *, email: str, password: str) -> User:
        stored = stored_spelling(email)  # an account signs in with the address it registered
        user = await User.objects.get_or_none(email=stored) if stored else None
        # Verify even for an unknown email, so timing does not tell which emails exist.
        valid, rehashed = await security.verify_and_update(
            password, user.password_hash if user else None
        )
        if user is None or not valid:
            raise InvalidCredentials()
        if user.blocked_at is not None:  # told only to whoever knows the password
            raise AccountBlocked()
        if rehashed is not None:  # stored with older parameters: keep it current
            await User.objects.filter(id=user.id).update(password_hash=rehashed)
        return user

    async def issue_tokens(self, *, user_id: int, family: str | None = None) -> TokenPair:
        refresh = security.new_opaque_token()
        async with database.transaction(), database.connection() as connection:
            await execute(connection, self._new_refresh_row(user_id, refresh, family))
            version = await _token_version(connection, user_id)
        return self._pair(user_id, refresh, version)

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
        version = 0
        async with database.transaction(), database.connection() as connection:
            spent = (await execute(connection, spend)).first()
            if spent is not None and await _is_blocked(connection, spent.user_id):
                # Rolled back: the token stays unused and works again once unblocked.
                raise AccountBlocked()
            if spent is not None:
                await execute(
                    connection, self._new_refresh_row(spent.user_id, refresh, spent.family)
                )
                version = await _token_version(connection, spent.user_id)
            else:
                await execute(connection, _revoke_family_of_used(digest, now))
        if spent is None:
            raise InvalidRefreshToken()
        return self._pair(spent.user_id, refresh, version)

    def _new_refresh_row(self, user_id: int, refresh: str, family: str | None) -> sa.Insert:
        now = clock.utcnow()
        return sa.insert(_tokens).values(
            user_id=user_id,
            token_hash=security.token_digest(refresh),
            family=family or secrets.token_hex(16),
            created_at=now,
            expires_at=now + self._refresh_lifetime,
        )

    def _pair(self, user_id: int, refresh: str, version: int) -> TokenPair:
        access = security.create_access_token(
            user_id=user_id, secret=self._secret, lifetime=self._access_lifetime, version=version
        )
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            expires_in=int(self._access_lifetime.total_seconds()),
        )

    async def user_from_access_token(self, token: str) -> Account:
        claims = self._access_tokens.claims(token)
        if claims is None or not is_valid_id(claims.user_id):
            raise NotAuthenticated()
        row = await _ACCOUNT_BY_ID.first(user_id=claims.user_id)
        account = Account(*row) if row is not None else None
        # A token issued before the user's last password change, reset or erasure is over.
        if account is None or claims.version != account.token_version:
            raise NotAuthenticated()
        if account.erased_at is not None or account.blocked_at is not None:
            raise NotAuthenticated()  # blocked: every token stops at once, not at expiry
        return account

    # -- account basics -----------------------------------------------------------------

    async def logout(self, *, refresh_token: str) -> None:
        """End the family of this refresh token (an unknown token is no error)."""
        digest = security.token_digest(refresh_token)
        family = sa.select(_tokens.c.family).where(_tokens.c.token_hash == digest)
        statement = (
            sa.update(_tokens)
            .where(_tokens.c.family == family.scalar_subquery(), _tokens.c.revoked_at.is_(None))
            .values(revoked_at=clock.utcnow())
        )
        async with database.transaction(), database.connection() as connection:
            await execute(connection, statement)

    async def change_password(
        self, *, user: Person, current_password: str, new_password: str
    ) -> None:
        """Every token of the user, access and refresh, stops working at once."""
        passwords.check_password(new_password, field="new_password")
        await self.check_password(user=user, password=current_password)
        await self._set_password(user.id, await security.hash_password(new_password))

    async def check_password(self, *, user: Person, password: str) -> None:
        if not await security.verify_password(password, user.password_hash):
            raise WrongPassword()

    async def request_password_reset(self, *, email: str) -> None:
        """Mail a one-time link to a known address; the same answer for an unknown one."""
        stored = stored_spelling(email)
        user = await User.objects.get_or_none(email=stored) if stored else None
        if user is not None:
            await self._queue_mail(user, PASSWORD_RESET)

    async def confirm_password_reset(self, *, token: str, new_password: str) -> None:
        passwords.check_password(new_password, field="new_password")
        user_id = await tokens.spend(token, PASSWORD_RESET)  # junk costs no password hashing
        if user_id is None:
            raise InvalidResetToken()
        await self._set_password(user_id, await security.hash_password(new_password))

    async def send_verification(self, *, user: Person) -> None:
        """Queue the sign-up's verification mail (when mail is configured), in the caller's
        transaction when one is under way."""
        await self._queue_mail(user, EMAIL_VERIFICATION)

    async def _queue_mail(self, user: Person, purpose: str) -> None:
        if user.email is not None and self.mailer is not None:
            async with database.transaction():  # the caller's, when one is under way
                await self.jobs.enqueue(MAIL, {"user_id": user.id, "purpose": purpose})

    def mail_kind(self, schedule: RetrySchedule) -> JobKind:
        return JobKind(MAIL, schedule, self.send_mail)

    async def send_mail(self, job: ClaimedJob) -> None:
        """The job handler: a one-time link, token and all, mailed to the user's address.

        The token is made here, not when the mail was asked for, so no live token waits in the
        queue; an attempt that is repeated mails a second token, and both work.
        """
        purpose = job.payload.get("purpose")
        user_id = job.payload.get("user_id")
        mail = _MAILS.get(purpose) if isinstance(purpose, str) else None
        if mail is None or not isinstance(user_id, int) or self.mailer is None:
            raise GiveUp(f"nothing to mail for {purpose!r}")
        email = None
        if is_valid_id(user_id):
            async with database.connection() as connection:
                email = (
                    await execute(
                        connection, sa.select(_users.c.email).where(_users.c.id == user_id)
                    )
                ).scalar()
        if email is None:
            return  # erased meanwhile: nobody to mail
        token, _ = await tokens.issue(user_id, str(purpose), mail.lifetime)
        link = f"{self.public_base_url}{mail.path}?token={token}"
        message = Mail(
            to=email,
            subject=mail.subject,
            body=mail.body.format(link=link, token=token),
        )
        try:
            async with asyncio.timeout(self.mail_timeout + 1):
                await self.mailer.send(message)
        except Exception as exc:  # logged without the address: it is personal data
            metrics.outside_failures.labels("smtp", type(exc).__name__).inc()
            error = f"could not send the {purpose} mail: {type(exc).__name__}: {exc}"
            raise RetryLater(error) from None

    async def verify_email(self, *, token: str) -> Account:
        user_id = await tokens.spend(token, EMAIL_VERIFICATION)
        if user_id is None:
            raise InvalidVerificationToken()
        verified = (
            sa.update(_users)
            .where(_users.c.id == user_id)
            .values(email_verified=True)
            .returning(*ACCOUNT_COLUMNS)
        )
        async with database.transaction(), database.connection() as connection:
            return Account(*(await execute(connection, verified)).one())

    async def end_sessions(self, connection: Any, user_id: int) -> None:
        """Inside the caller's transaction: every access and refresh token of the user ends."""
        in_transaction()
        await execute(
            connection,
            sa.update(_users)
            .where(_users.c.id == user_id)
            .values(token_version=_users.c.token_version + 1),
        )
        await execute(
            connection,
            sa.update(_tokens)
            .where(_tokens.c.user_id == user_id, _tokens.c.revoked_at.is_(None))
            .values(revoked_at=clock.utcnow()),
        )

    @staticmethod
    async def forget_tokens(user_id: int) -> None:
        """Inside the caller's transaction (an erasure): the user's refresh tokens and mailed
        one-time links are deleted, not only revoked."""
        await execute(in_transaction(), sa.delete(_tokens).where(_tokens.c.user_id == user_id))
        await tokens.forget(user_id)

    async def _set_password(self, user_id: int, password_hash: str) -> None:
        async with database.transaction(), database.connection() as connection:
            await execute(
                connection,
                sa.update(_users).where(_users.c.id == user_id).values(password_hash=password_hash),
            )
            await self.end_sessions(connection, user_id)

    async def reset_token_is_live(self, token: str) -> bool:
        """Whether a password-reset link still works (the page asks before its form)."""
        return await tokens.state(token, PASSWORD_RESET) == "live"


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


async def _is_blocked(connection: Any, user_id: int) -> bool:
    statement = sa.select(_users.c.blocked_at).where(_users.c.id == user_id)
    return (await execute(connection, statement)).scalar() is not None


async def _token_version(connection: Any, user_id: int) -> int:
    version = await connection.scalar(
        sa.select(_users.c.token_version).where(_users.c.id == user_id)
    )
    return int(version or 0)
