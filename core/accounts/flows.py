"""Sign-up, login, renaming and erasure: each touches several domains, so each lives here,
opens the one transaction its writes share and asks every domain to write its own rows.

Nothing below this package opens a transaction around another domain's writes; the functions
each flow calls inside its transaction refuse to run outside one (`in_transaction()`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from core.auth.service import AuthService, TokenPair
from core.campaigns.service import Campaigns
from core.infra import security
from core.infra.db import database
from core.infra.emails import normalize_email
from core.infra.events import Events
from core.integrations.base import EmailVerifier, EnrichmentScheduler
from core.jobs.queue import JobQueue
from core.program.review import Review
from core.referrals.models import ReferralCode
from core.referrals.service import ReferralService
from core.referrals.tables import APPROVED
from core.telegram.joins import forget_links
from core.telegram.service import NEW_REFERRAL, TelegramService
from core.users.errors import AlreadyRegistered, EmailTaken, EmailUndeliverable
from core.users.models import Account, Person, User, user_data
from core.users.names import clean_name
from core.users.passwords import check_password
from core.users.service import UserService


@dataclass(kw_only=True)
class Accounts:
    users: UserService
    auth: AuthService
    referrals: ReferralService
    campaigns: Campaigns
    review: Review
    jobs: JobQueue
    events: Events
    verifier: EmailVerifier | None = None
    enrichment: EnrichmentScheduler | None = None
    # The verification mail of an API sign-up, when mail is on.
    welcome: Callable[..., Awaitable[None]] | None = None

    # -- sign-up ------------------------------------------------------------------------

    async def sign_up(
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
        if await self.users.email_taken(email):
            raise EmailTaken()  # fast path; the unique index decides under races
        if referral_code:  # before the costly parts
            code = await self.referrals.check_claimable(referral_code)
            await self.campaigns.running(code.campaign_id)
        email_status = await self._verify_email(email)
        password_hash = await security.hash_password(password)
        try:
            async with database.transaction():
                claimed = await self.referrals.claim(referral_code) if referral_code else None
                user = await self.users.create(
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

    async def sign_up_telegram(
        self,
        *,
        telegram_id: int,
        full_name: str | None,
        username: str | None,
        language_code: str | None,
        referral_code: str | None = None,
    ) -> tuple[User, ReferralCode | None]:
        """Create a bot account, optionally as a referral; returns the code it joined with."""
        if await self.users.by_telegram_id(telegram_id) is not None:
            raise AlreadyRegistered()
        try:
            async with database.transaction():
                claimed = await self.referrals.claim(referral_code) if referral_code else None
                user = await self.users.create(
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
        """In the sign-up's own transaction: the code's campaign (not running: the sign-up
        rolls back, `campaign_not_active`), the program's counters and review, the events,
        and the chat message to the referrer."""
        campaign = await self.campaigns.running(claimed.campaign_id) if claimed else None
        referral = await self.review.signed_up(
            user=user,
            referrer_id=claimed.owner.id if claimed else None,
            code=claimed.code if claimed else None,
            campaign=campaign,
            client_address=client_address,
        )
        await self.events.emit("user.created", user_data(Account.of(user)))
        if claimed is None or referral is None:
            return
        await self.events.emit("referral.created", referral)
        if claimed.owner.telegram_id is not None:
            await TelegramService.notify(
                jobs=self.jobs,
                recipient_id=claimed.owner.id,
                message=NEW_REFERRAL,
                referral_id=user.id,
                # The referrer's total as of this referral (the claim read it after counting it).
                referral_count=claimed.owner.referral_count,
                # Only a name the person gave: never a piece of their email or their username.
                referral_name=user.full_name,
                held=referral.status != APPROVED,
            )

    # -- the profile ---------------------------------------------------------------------

    async def rename(self, *, user: Person, full_name: str | None) -> Account:
        """Change the name others see; the public views of the user's code show it at once."""
        renamed = await self.users.rename(user=user, full_name=full_name)
        await self.referrals.views.forget_owner(renamed)
        return renamed

    # -- login --------------------------------------------------------------------------

    async def log_in(self, *, email: str, password: str, client_address: str | None) -> TokenPair:
        """Check the password (refusing blocked and erased accounts), remember the sign-in's
        network for review, and hand out a token pair."""
        user = await self.auth.authenticate(email=email, password=password)
        await self.review.signed_in(user_id=user.id, client_address=client_address)
        return await self.auth.issue_tokens(user_id=user.id)

    # -- erasure ------------------------------------------------------------------------

    async def erase(self, *, user: Person) -> None:
        """Erase the account: everything personal goes, tokens end, the code closes.

        The row stays, anonymous, so the referral it was (and the referrals it brought) still
        count for the people concerned. The caller checked the password.
        """
        async with database.transaction(), database.connection() as connection:
            codes = await self.referrals.close_codes_of(user.id)
            await forget_links(connection, user.id)
            await self.users.anonymise(user.id)
            await self.auth.forget_tokens(user.id)
        await self.referrals.views.forget_owner(user, codes=codes)
