"""`python -m bot`: migrations, then long polling, or a webhook server when TELEGRAM_WEBHOOK_URL
is set."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import signal
import sys
from contextlib import suppress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from core.infra.logs import configure_logging
from core.infra.settings import Settings, settings_or_exit

if TYPE_CHECKING:
    from aiogram import Bot, Dispatcher

    from bot.growth import ChatUpdates

log = logging.getLogger("bot")

# "<bot id>:<secret>", as @BotFather hands it out.
TOKEN_RE = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{20,}")
WEBHOOK_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")


class StartupError(Exception):
    """A problem worth one line on stderr, not a traceback."""


def check_settings(settings: Settings) -> str:
    """The bot token, once the settings the bot needs make sense (checked before any import
    that touches the database, so a bad start costs nothing)."""
    token = (
        settings.telegram.bot_token.get_secret_value().strip()
        if settings.telegram.bot_token
        else ""
    )
    if not token:
        raise StartupError("TELEGRAM_BOT_TOKEN is not set: get a token from @BotFather")
    if not TOKEN_RE.fullmatch(token):
        raise StartupError(
            "TELEGRAM_BOT_TOKEN is malformed: expected '<digits>:<secret>' as @BotFather gives it"
        )
    check_api_url(settings.telegram.api_url)
    secret = settings.telegram.webhook_secret
    if secret is not None and not WEBHOOK_SECRET_RE.fullmatch(secret.get_secret_value()):
        raise StartupError(
            "TELEGRAM_WEBHOOK_SECRET may hold only A-Z, a-z, 0-9, '_' and '-' (1-256 characters)"
        )
    return token


def check_api_url(url: str) -> None:
    """A Bot API base URL: http(s), a host, and no `/bot<token>` (the client adds that)."""
    parts = urlsplit(url.strip())
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or re.search(r"/bot[^/]*", parts.path)
        or parts.query
        or parts.fragment
    ):
        raise StartupError(
            "TELEGRAM_API_URL must be a base URL such as https://api.telegram.org "
            "(http or https, no /bot<token> path)"
        )


async def run(settings: Settings, token: str, *, handle_signals: bool = True) -> None:
    from aiogram.exceptions import TelegramNetworkError, TelegramUnauthorizedError

    from bot import heartbeat
    from bot.app import create_bot, create_dispatcher, register_commands
    from bot.growth import ChatUpdates, GrowthJobs
    from bot.notifier import Notifier
    from core.container import build_core
    from core.telegram.service import TELEGRAM_MESSAGE

    core = build_core(settings)
    bot = create_bot(token, api_url=settings.telegram.api_url)
    await core.start()
    try:
        try:
            me = await bot.get_me()
        except TelegramUnauthorizedError:
            raise StartupError("Telegram refused TELEGRAM_BOT_TOKEN (401 Unauthorized)") from None
        except TelegramNetworkError as exc:
            raise StartupError(
                f"cannot reach the Bot API at {settings.telegram.api_url}: {exc}"
            ) from None
        if not core.telegram.bot_username:
            core.telegram.bot_username = me.username  # deep links need it; the API's too
            log.warning("TELEGRAM_BOT_USERNAME is not set; using @%s for links", me.username)
        elif me.username and me.username.lower() != core.telegram.bot_username.lower():
            log.warning(
                "TELEGRAM_BOT_USERNAME is @%s but the token belongs to @%s",
                core.telegram.bot_username,
                me.username,
            )

        dispatcher = create_dispatcher(core, redis_url=settings.redis_url)
        # chat_member and chat_join_request only while a campaign names a chat.
        updates = ChatUpdates(core)
        updates.used = dispatcher.resolve_used_update_types()
        bot.session.middleware(updates)
        # Chat messages and the campaign chats' jobs are the bot's: no other process holds
        # the token.
        notifier = core.worker(
            {
                TELEGRAM_MESSAGE: Notifier(bot=bot, core=core).send,
                **GrowthJobs(bot=bot, core=core, updates=updates).handlers(),
            }
        )
        notifier.beat = heartbeat.beat

        async def on_startup() -> None:
            await register_commands(bot)
            notifier.start()
            core.link_opens.start()

        async def on_shutdown() -> None:
            await notifier.stop()
            await core.link_opens.stop()

        dispatcher.startup.register(on_startup)
        dispatcher.shutdown.register(on_shutdown)
        await updates.refresh(force=True)
        allowed = updates.allowed()
        log.info("asking Telegram for %s", ", ".join(allowed))

        if settings.telegram.webhook_url:
            await _serve_webhook(settings, dispatcher, bot, updates, handle_signals=handle_signals)
        else:
            log.info("@%s: long polling %s", me.username, settings.telegram.api_url)
            await _poll(dispatcher, bot, allowed, handle_signals=handle_signals)
    finally:
        await core.stop()
        await bot.session.close()


async def _poll(
    dispatcher: Dispatcher, bot: Bot, allowed: list[str], *, handle_signals: bool
) -> None:
    await bot.delete_webhook()  # getUpdates is refused while a webhook is set
    polling = asyncio.create_task(
        dispatcher.start_polling(bot, allowed_updates=allowed, handle_signals=handle_signals)
    )
    try:
        await asyncio.shield(polling)
    except asyncio.CancelledError:
        # Cancelling start_polling would leave its fetch loop running: stop it instead.
        await dispatcher.stop_polling()
        await polling
        raise


async def _serve_webhook(
    settings: Settings,
    dispatcher: Dispatcher,
    bot: Bot,
    updates: ChatUpdates,
    *,
    handle_signals: bool,
) -> None:
    from aiohttp import web

    from bot.webhook import create_webhook_app, webhook_path

    url, telegram = settings.telegram.webhook_url or "", settings.telegram
    # Without a configured secret, a fresh one per start is as good: we register it ourselves.
    secret = (
        telegram.webhook_secret.get_secret_value()
        if telegram.webhook_secret
        else secrets.token_urlsafe(32)
    )
    runner = web.AppRunner(
        create_webhook_app(dispatcher, bot, secret=secret, path=webhook_path(url))
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, telegram.host, telegram.port).start()

        async def subscribe(allowed: list[str]) -> None:
            await bot.set_webhook(url, secret_token=secret, allowed_updates=allowed)

        await subscribe(updates.allowed())
        updates.resubscribe = subscribe  # a campaign naming a chat changes what is asked for
        log.info("webhook %s served on %s:%s", url, telegram.host, telegram.port)
        stop = asyncio.Event()
        if handle_signals:
            for signal_number in (signal.SIGINT, signal.SIGTERM):
                asyncio.get_running_loop().add_signal_handler(signal_number, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> int:
    settings = settings_or_exit("bot")
    redact = configure_logging(settings)
    try:
        token = check_settings(settings)
        _migrate()
        with suppress(KeyboardInterrupt):
            asyncio.run(run(settings, token))
    except StartupError as exc:
        print(f"bot: {redact(str(exc))}", file=sys.stderr)
        return 2
    return 0


def _migrate() -> None:
    """Apply pending migrations (a no-op when `make bot` or compose's migrate step ran)."""
    from core.migrate import upgrade_to_head

    try:
        upgrade_to_head()
    except Exception as exc:
        raise StartupError(f"cannot migrate the database: {type(exc).__name__}: {exc}") from exc


if __name__ == "__main__":
    sys.exit(main())
