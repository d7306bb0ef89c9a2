"""Accounts: sign-up through the API (email) or the bot (Telegram), and reading them."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core.auth.models import AccountToken, RefreshToken
from core.infra import clock, security
from core.infra.db import database, is_valid_id
from core.infra.emails import normalize_email
from core.infra.pagination import newest_first
from core.integrations.base import EmailVerifier, EnrichmentScheduler
from core.jobs.queue import JobQueue
from core.program.service import ProgramService
from core.program.tables import APPROVED
from core.referrals.models import ReferralCode
from core.referrals.service import ReferralService
from core.telegram.models import TelegramLinkToken
from core.telegram.service import NEW_REFERRAL, TelegramService
from core.users.errors import AlreadyRegistered, EmailTaken, EmailUndeliverable, UserNotFound
from core.users.models import ACCOUNT_COLUMNS, Account, Person, User
from core.users.names import clean_name
from core.users.passwords import check_password
from core.webhooks.events import Events, NoEvents, user_data

log = logging.getLogger(__name__)

_users = User.ormar_config.table
_codes = ReferralCode.ormar_config.table
_refresh_tokens = RefreshToken.ormar_config.table
_account_tokens = AccountToken.ormar_config.table
_link_tokens = TelegramLinkToken.ormar_config.table
# What erasure clears: every column that says who the person is.
_ERASED = dict.fromkeys(
    (
        "email",
        "password_hash",
        "full_name",
        "telegram_id",
        "telegram_username",
        "language_code",
        "email_status",
        "company",
        "job_title",
        "location",
        "avatar_url",
    )
)


class UserService:
    def __init__(
        self,
        *,
        referrals: ReferralService,
        jobs: JobQueue,
        program: ProgramService,
        events: Events | None = None,
        verifier: EmailVerifier | None = None,
        enrichment: EnrichmentScheduler | None = None,
        welcome: Callable[..., Awaitable[None]] | None = None,
    ) -> None:
        self.referrals = referrals
        self.jobs = jobs
        self.program = program
        self.events: Events = events or NoEvents()
        self.verifier = verifier
        self.enrichment = enrichment
        self.welcome = welcome  # the verification mail of an API sign-up, when mail is on

    async def get(self, user_id: int) -> User:
        user = await User.objects.get_or_none(id=user_id) if is_valid_id(user_id) else None
        if user is None:
            raise UserNotFound()
        return user

    async def search(
        self,
        *,
        query: str | None = None,
        ids: Sequence[int] = (),
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Account], str | None]:
        """Accounts for operators, newest first: by exact id (`query` of digits, or `ids`),
        else by the start of the email address; every account without either."""
        statement = sa.select(*ACCOUNT_COLUMNS)
        text = (query or "").strip()
        if ids:
            statement = statement.where(_users.c.id.in_([i for i in ids if is_valid_id(i)]))
        elif text.isascii() and text.isdigit():
            statement = statement.where(
                _users.c.id == int(text) if is_valid_id(int(text)) else sa.false()
            )
        elif text:
            pattern = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            statement = statement.where(
                sa.func.lower(_users.c.email).like(pattern[:320] + "%", escape="\\")
            )
        rows, next_cursor = await newest_first(statement, _users.c.id, limit=limit, cursor=cursor)
        return [Account(*row) for row in rows], next_cursor

    async def by_telegram_id(self, telegram_id: int) -> User | None:
        return await User.objects.get_or_none(telegram_id=telegram_id)

    async def register(
        self,
        *,
        email: str,
        password: str,
        full_name: str | None = None,
        referral_code: str | None = None,
        client_address: str | None = None,
    ) -> User:
        """Create an API account, optionally as a referral of a code's owner (`client_address`,
        the one the rate limits count, decides with the rest whether it is held for review)."""
        email = normalize_email(email)
        check_password(password)
        if await User.objects.filter(email=email).exists():
            raise EmailTaken()  # fast path; the unique index decides under races
        if referral_code:
            await self.referrals.check_claimable(referral_code)  # before the costly parts
        email_status = await self._verify_email(email)
        password_hash = await security.hash_password(password)
        try:
            async with database.transaction():
                claimed = await self.referrals.claim(referral_code) if referral_code else None
                user = await User.objects.create(
                    email=email,
                    password_hash=password_hash,
                    full_name=full_name,
                    referrer=claimed.owner.id if claimed else None,
                    referral_code=claimed.code if claimed else None,
                    email_status=email_status,
                    enrichment_status="pending" if self.enrichment else None,
                )
                await self._signed_up(user, claimed, client_address)
                if self.enrichment:
                    await self.enrichment.schedule(user.id)
                if self.welcome:
                    await self.welcome(user=user)
        except IntegrityError:
            raise EmailTaken() from None
        if claimed:
            await self.referrals.after_claim(claimed)
        return user

    async def register_telegram(
        self,
        *,
        telegram_id: int,
        full_name: str | None,
        username: str | None,
        language_code: str | None,
        referral_code: str | None = None,
    ) -> tuple[User, ReferralCode | None]:
        """Create a bot account, optionally as a referral; returns the code it joined with."""
        if await self.by_telegram_id(telegram_id) is not None:
            raise AlreadyRegistered()
        try:
            async with database.transaction():
                claimed = await self.referrals.claim(referral_code) if referral_code else None
                user = await User.objects.create(
                    telegram_id=telegram_id,
                    full_name=clean_name(full_name),
                    telegram_username=(username or "")[:64] or None,
                    language_code=(language_code or "")[:16] or None,
                    referrer=claimed.owner.id if claimed else None,
                    referral_code=claimed.code if claimed else None,
                )
                await self._signed_up(user, claimed)
        except IntegrityError:
            raise AlreadyRegistered() from None
        if claimed:
            await self.referrals.after_claim(claimed)
        return user, claimed

    async def update_profile(self, *, user: Person, full_name: str | None) -> Account:
        """Change the name others see; the public views of the user's code show it at once."""
        statement = (
            sa.update(_users)
            .where(_users.c.id == user.id)
            .values(full_name=full_name)
            .returning(*ACCOUNT_COLUMNS)
        )
        async with database.transaction(), database.connection() as connection:
            updated = Account(*(await connection.execute(statement)).one())
        await self.referrals.forget_owner(updated)
        return updated

    async def erase(self, *, user: Person) -> None:
        """Erase the account: everything personal goes, tokens end, the code closes.

        The row stays, anonymous, so the referral it was (and the referrals it brought) still
        count for the people concerned. The caller checked the password.
        """
        now = clock.utcnow()
        live = await ReferralCode.objects.get_or_none(owner=user.id, closed_at=None)
        async with database.transaction(), database.connection() as connection:
            await connection.execute(
                sa.update(_codes)
                .where(_codes.c.owner_id == user.id, _codes.c.closed_at.is_(None))
                .values(closed_at=now)
            )
            await connection.execute(
                sa.update(_users)
                .where(_users.c.id == user.id)
                # A new token version ends every access token already handed out.
                .values(**_ERASED, erased_at=now, token_version=_users.c.token_version + 1)
            )
            for table in (_refresh_tokens, _account_tokens, _link_tokens):
                await connection.execute(sa.delete(table).where(table.c.user_id == user.id))
        await self.referrals.forget_owner(user, code=live.code if live else None)

    async def _verify_email(self, email: str) -> str | None:
        if self.verifier is None:
            return None
        verdict = await self.verifier.verify(email)
        if verdict == "undeliverable":
            raise EmailUndeliverable()
        return verdict

    async def _signed_up(
        self, user: User, claimed: ReferralCode | None, client_address: str | None = None
    ) -> None:
        """In the sign-up's own transaction: the program's counters and review, the events,
        and the chat message to the referrer."""
        referral = await self.program.signed_up(
            user=user,
            referrer_id=claimed.owner.id if claimed else None,
            code=claimed.code if claimed else None,
            client_address=client_address,
        )
        await self.events.emit("user.created", user_data(Account.of(user)))
        if claimed is None or referral is None:
            return
        await self.events.emit("referral.created", asdict(referral))
        if claimed.owner.telegram_id is not None:
            await TelegramService.notify(
                jobs=self.jobs,
                recipient_id=claimed.owner.id,
                message=NEW_REFERRAL,
                referral_id=user.id,
                # Only a name the person gave: never a piece of their email or their username.
                referral_name=user.full_name,
                held=referral.status != APPROVED,
            )
