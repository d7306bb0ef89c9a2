from core.infra.errors import Conflict, Unavailable


class BotNotConfigured(Unavailable):
    code = "bot_not_configured"
    message = "No Telegram bot is configured for this service."


class TelegramAlreadyLinked(Conflict):
    code = "telegram_already_linked"
    message = "This account is already linked to a Telegram account."


class TelegramAccountTaken(TelegramAlreadyLinked):
    """Seen from the chat: the Telegram account opening a link belongs to another user."""

    message = "This Telegram account already belongs to another account."


class LinkTokenInvalid(Conflict):
    code = "link_token_invalid"
    message = "This link is unknown, expired or already used."


class LinkTokenExpired(LinkTokenInvalid):
    code = "link_token_expired"
    message = "This link has expired; ask for a new one."


class LinkTokenUsed(LinkTokenInvalid):
    code = "link_token_used"
    message = "This link has already been used."
