"""The core, assembled once per process and handed to a front (API app, bot dispatcher)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from core import db
from core.auth.service import AuthService
from core.cache import CodeCache, build_cache
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
    _connected: bool = field(default=False, repr=False)

    async def start(self) -> None:
        if not db.database.is_connected:
            await db.database.connect()
            self._connected = True

    async def stop(self) -> None:
        await self.cache.close()
        if self._connected:
            await db.database.disconnect()
            self._connected = False

    async def database_ok(self) -> bool:
        try:
            async with db.database.connection() as connection:
                await connection.exec_driver_sql("SELECT 1")
        except Exception as exc:
            log.warning("database check failed: %r", exc)
            return False
        return True


def build_core(settings: Settings) -> Core:
    cache = build_cache(settings.redis_url, timeout=settings.cache.redis_timeout_seconds)
    referrals = ReferralService(cache=cache, cache_ttl=settings.cache.ttl_seconds)
    return Core(
        settings=settings,
        cache=cache,
        referrals=referrals,
        users=UserService(referrals=referrals),
        auth=AuthService(settings.auth),
        telegram=TelegramService(
            bot_username=settings.telegram.bot_username,
            link_lifetime=dt.timedelta(minutes=settings.telegram.link_minutes),
        ),
    )
