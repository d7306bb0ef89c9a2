"""The referral service's domain core: shared by the REST API and the Telegram bot."""
