"""Bring the database schema to the newest revision from code (the bot's start, the tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from core.infra.db import async_url
from core.infra.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent


def upgrade_to_head(database_url: str | None = None) -> None:
    """`alembic upgrade head`; synchronous (Alembic runs its own event loop: call it before
    starting one, or from a worker thread)."""
    ini = ROOT / "alembic.ini"
    if not ini.is_file():
        raise FileNotFoundError(f"{ini} not found: run from the project checkout")
    config = Config(str(ini))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = async_url(database_url or get_settings().database_url)
    config.attributes["configure_logger"] = False  # keep the caller's logging set-up
    command.upgrade(config, "head")
