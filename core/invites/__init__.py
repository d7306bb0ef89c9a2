"""Growth inside Telegram (BOT.md v1.2): invite links to a campaign's chat, joins that sign a
friend up, stays that qualify them, join requests decided by review."""
