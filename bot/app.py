"""Assembling the bot: the Bot client, the dispatcher with its middlewares, the command list."""

from __future__ import annotations

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage, SimpleEventIsolation
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import BotCommand

from bot.handlers import create_routers
from bot.i18n import N_, LocaleMiddleware, get_i18n, translate
from bot.middlewares import (
    AccountMiddleware,
    EnsureAccount,
    Throttle,
    ThrottlingMiddleware,
    UpdateContextMiddleware,
)
from bot.session import WaitOnRetryAfter
from bot.storage import FallbackStorage
from core.container import Core
from core.infra.cache import connect_redis
from core.infra.ratelimit import Counters, MemoryCounters, Rate, RedisCounters

DEFAULT_RATE = Rate(count=8, seconds=5)
# The most one update waits on Redis (dialog state, throttle) before memory stands in.
REDIS_TIMEOUT_SECONDS = 0.5
# Dialog state outlives a restart when it is in Redis, but not forever.
STATE_TTL_SECONDS = 24 * 3600

COMMANDS = (
    ("start", N_("Start: main menu")),
    ("code", N_("Your referral code")),
    ("newcode", N_("Create a referral code")),
    ("referrals", N_("People who joined with your code")),
    ("stats", N_("Your referral stats")),
    ("top", N_("Top referrers")),
    ("rewards", N_("Your rewards")),
    ("invite", N_("Your invite link to the campaign's chat")),
    ("help", N_("Help")),
    ("cancel", N_("Stop the current dialog")),
)


def create_bot(token: str, *, api_url: str) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_url))
    session.middleware(WaitOnRetryAfter())
    return Bot(
        token=token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML)
    )


def create_dispatcher(
    core: Core,
    *,
    rate: Rate = DEFAULT_RATE,
    redis_url: str | None = None,
) -> Dispatcher:
    """The dispatcher with the core services handed to every handler."""
    storage: BaseStorage = MemoryStorage()
    counters: Counters = MemoryCounters()
    if redis_url:
        redis = connect_redis(redis_url, timeout=REDIS_TIMEOUT_SECONDS)
        storage = FallbackStorage(
            RedisStorage(redis, state_ttl=STATE_TTL_SECONDS, data_ttl=STATE_TTL_SECONDS),
            timeout=REDIS_TIMEOUT_SECONDS,
        )
        counters = RedisCounters(redis_url, timeout=REDIS_TIMEOUT_SECONDS, prefix="bot:throttle:")

    throttle = Throttle(rate, counters)
    # Updates from one user are handled one at a time, a double press seeing the first's
    # result. The lock is this process's: long polling is one process, and Redis must not be
    # able to stop the bot from answering.
    dispatcher = Dispatcher(storage=storage, events_isolation=SimpleEventIsolation(), core=core)
    dispatcher.update.outer_middleware(UpdateContextMiddleware())
    dispatcher.update.outer_middleware(ThrottlingMiddleware(throttle))
    dispatcher.update.outer_middleware(AccountMiddleware(core))
    dispatcher.message.middleware(EnsureAccount(core))
    dispatcher.callback_query.middleware(EnsureAccount(core))
    LocaleMiddleware(get_i18n()).setup(dispatcher)
    dispatcher.include_routers(*create_routers())
    dispatcher.shutdown.register(throttle.close)
    return dispatcher


async def register_commands(bot: Bot) -> None:
    """The command list Telegram shows, in English and Russian."""
    for locale, language_code in (("en", None), ("ru", "ru")):
        commands = [
            BotCommand(command=name, description=translate(text, locale=locale))
            for name, text in COMMANDS
        ]
        await bot.set_my_commands(commands, language_code=language_code)
