"""The core, assembled once per process and handed to a front (API app, bot dispatcher)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field

from core import db
from core.auth.service import AuthService
from core.cache import CodeCache, build_cache
from core.integrations.providers import Integrations, build_integrations
from core.mail import build_postman
from core.ratelimit import RateLimiter, build_limiter
from core.referrals.service import ReferralService
from core.settings import Settings
from core.telegram.service import TelegramService
from core.users.service import UserService

log = logging.getLogger(__name__)


@dataclass
class Core:
    settings: Settings
    cache: CodeCache
    referrals: ReferralService
    users: UserService
    auth: AuthService
    telegram: TelegramService
    limiter: RateLimiter = field(default_factory=RateLimiter.disabled)
    integrations: Integrations = field(default_factory=Integrations)
    _connected: bool = field(default=False, repr=False)

    async def start(self) -> None:
        if not db.database.is_connected:
            await db.database.connect()
            self._connected = True
            if db.is_sqlite():
                # Readers do not wait for writers, so the API and the bot share a file well.
                async with db.database.connection() as connection:
                    await connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        self.integrations.start()

    async def stop(self) -> None:
        await self.auth.postman.close()
        await self.integrations.stop()
        await self.cache.close()
        await self.limiter.close()
        if self._connected:
            await db.database.disconnect()
            self._connected = False

    async def database_ok(self) -> bool:
        """Whether the database answers, decided within the readiness bound."""
        try:
            async with asyncio.timeout(self.settings.database.ready_timeout_seconds):
                async with db.database.connection() as connection:
                    await connection.exec_driver_sql("SELECT 1")
        except Exception as exc:
            log.warning("database check failed: %r", exc)
            return False
        return True


def build_core(settings: Settings) -> Core:
    db.database.configure(settings.database_url, settings.database)
    cache = build_cache(settings.redis_url, timeout=settings.cache.redis_timeout_seconds)
    referrals = ReferralService(cache=cache, cache_ttl=settings.cache.ttl_seconds)
    integrations = build_integrations(settings.integrations, referrals=referrals)
    postman = build_postman(settings.mail)
    return Core(
        settings=settings,
        cache=cache,
        referrals=referrals,
        users=UserService(
            referrals=referrals,
            verifier=integrations.verifier,
            enrichment=integrations.enrichment,
        ),
        auth=AuthService(
            settings.auth, postman=postman, public_base_url=settings.mail.public_base_url
        ),
        integrations=integrations,
        limiter=build_limiter(settings),
        telegram=TelegramService(
            bot_username=settings.telegram.bot_username,
            link_lifetime=dt.timedelta(minutes=settings.telegram.link_minutes),
        ),
    )
