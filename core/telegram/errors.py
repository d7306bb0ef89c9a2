from core.errors import Conflict, Unavailable


class BotNotConfigured(Unavailable):
    code = "bot_not_configured"
    message = "No Telegram bot is configured for this service."


class TelegramAlreadyLinked(Conflict):
    code = "telegram_already_linked"
    message = "This account is already linked to a Telegram account."


class LinkTokenInvalid(Conflict):
    code = "link_token_invalid"
    message = "This link is unknown, expired or already used."
