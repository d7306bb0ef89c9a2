"""The Telegram bot: a second front over the same core as the REST API."""
