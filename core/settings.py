"""One settings object, read from the environment and `.env`, grouped by area."""

from __future__ import annotations

import logging
import os
import secrets
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

_PLACEHOLDERS = {"", "changeme", "change-me", "secret", "changethis", "please-change-me"}
# ENV_FILE=none (the tests) reads the environment alone.
_env_file = os.environ.get("ENV_FILE", ".env")
_ENV = SettingsConfigDict(
    env_file=None if _env_file == "none" else _env_file, env_file_encoding="utf-8", extra="ignore"
)


class AuthSettings(BaseSettings):
    model_config = _ENV

    secret_key: SecretStr = Field(
        default_factory=lambda: SecretStr(""), validation_alias="SECRET_KEY"
    )
    access_token_minutes: int = Field(15, ge=1, validation_alias="ACCESS_TOKEN_MINUTES")
    refresh_token_days: int = Field(30, ge=1, validation_alias="REFRESH_TOKEN_DAYS")


class CacheSettings(BaseSettings):
    model_config = SettingsConfigDict(**_ENV, env_prefix="CACHE_")

    ttl_seconds: int = Field(300, ge=1)
    redis_timeout_seconds: float = Field(0.25, gt=0)


class RateLimitSettings(BaseSettings):
    model_config = SettingsConfigDict(**_ENV, env_prefix="RATE_LIMIT_")

    enabled: bool = True
    # "<count>/<seconds>" per client address (and, for login, per account).
    login: str = "10/60"
    login_account: str = "5/300"
    registration: str = "10/3600"
    lookup: str = "120/60"
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("login", "login_account", "registration", "lookup")
    @classmethod
    def _check_rule(cls, value: str) -> str:
        count, _, seconds = value.partition("/")
        if not (count.isdigit() and seconds.isdigit() and int(count) > 0 and int(seconds) > 0):
            raise ValueError("a rate limit is written '<count>/<seconds>', e.g. '10/60'")
        return value


class TelegramSettings(BaseSettings):
    model_config = SettingsConfigDict(**_ENV, env_prefix="TELEGRAM_")

    bot_token: SecretStr | None = None
    bot_username: str | None = None
    api_url: str = "https://api.telegram.org"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    link_minutes: int = Field(15, ge=1)

    @field_validator("bot_username")
    @classmethod
    def _strip_at(cls, value: str | None) -> str | None:
        return value.strip().lstrip("@") or None if value else None


class IntegrationSettings(BaseSettings):
    model_config = _ENV

    hunter_api_key: SecretStr | None = Field(None, validation_alias="HUNTER_API_KEY")
    hunter_base_url: str = Field("https://api.hunter.io", validation_alias="HUNTER_BASE_URL")
    clearbit_api_key: SecretStr | None = Field(None, validation_alias="CLEARBIT_API_KEY")
    clearbit_base_url: str = Field(
        "https://person.clearbit.com", validation_alias="CLEARBIT_BASE_URL"
    )
    timeout_seconds: float = Field(3.0, gt=0, validation_alias="INTEGRATIONS_TIMEOUT_SECONDS")
    max_retries: int = Field(2, ge=0, validation_alias="INTEGRATIONS_MAX_RETRIES")


class Settings(BaseSettings):
    model_config = _ENV

    environment: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite:///./data/referrals.db"
    redis_url: str | None = None
    log_level: str = "INFO"

    auth: AuthSettings = Field(default_factory=AuthSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    integrations: IntegrationSettings = Field(default_factory=IntegrationSettings)

    @field_validator("redis_url")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _enforce_non_default_secrets(self) -> Settings:
        secret = self.auth.secret_key.get_secret_value()
        if secret.lower() in _PLACEHOLDERS or len(secret) < 32:
            if self.environment == "production":
                raise ValueError(
                    "SECRET_KEY must be set to a random value of at least 32 characters in "
                    'production, e.g. python -c "import secrets; print(secrets.token_urlsafe(48))"'
                )
            if secret:
                log.warning("SECRET_KEY is weak; fine for development, refused in production")
            else:
                # Tokens will not survive a restart; development only.
                self.auth.secret_key = SecretStr(secrets.token_urlsafe(48))
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
