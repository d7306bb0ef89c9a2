"""Webhook mode: aiogram's aiohttp handler behind a secret-token check."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name


class SecretCheckedHandler(SimpleRequestHandler):
    """Only Telegram knows the secret given to setWebhook: anything else is refused (403)."""

    async def handle(self, request: web.Request) -> web.Response:
        if not self.secret_token or not secrets.compare_digest(
            request.headers.get(SECRET_HEADER, ""), self.secret_token
        ):
            return web.Response(status=403, text="Forbidden")
        return await super().handle(request)


def webhook_path(webhook_url: str) -> str:
    return urlsplit(webhook_url).path or "/"


def create_webhook_app(
    dispatcher: Dispatcher, bot: Bot, *, secret: str, path: str, in_background: bool = True
) -> web.Application:
    app = web.Application()
    SecretCheckedHandler(
        dispatcher=dispatcher, bot=bot, secret_token=secret, handle_in_background=in_background
    ).register(app, path=path)
    setup_application(app, dispatcher, bot=bot)
    return app
