"""One settings object, read from the environment and `.env`, grouped by area."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

log = logging.getLogger(__name__)

_PLACEHOLDERS = {"", "changeme", "change-me", "secret", "changethis", "please-change-me"}
# ENV_FILE=none (the tests) reads the environment alone.
_env_file = os.environ.get("ENV_FILE", ".env")
_ENV = SettingsConfigDict(
    env_file=None if _env_file == "none" else _env_file, env_file_encoding="utf-8", extra="ignore"
)


def _blank_is_none(value: object) -> object:
    """`NAME=` in .env (as .env.example leaves it) means the setting is off."""
    return None if isinstance(value, str) and not value.strip() else value


def _split_list(value: object) -> object:
    """A list setting written "a,b,c" or as a JSON list."""
    if isinstance(value, str):
        text = value.strip()
        return json.loads(text) if text.startswith("[") else text.split(",")
    return value


class AuthSettings(BaseSettings):
    model_config = _ENV

    secret_key: SecretStr = Field(
        default_factory=lambda: SecretStr(""), validation_alias="SECRET_KEY"
    )
    access_token_minutes: int = Field(15, ge=1, validation_alias="ACCESS_TOKEN_MINUTES")
    refresh_token_days: int = Field(30, ge=1, validation_alias="REFRESH_TOKEN_DAYS")


class DatabaseSettings(BaseSettings):
    """Bounds on every database wait, so a locked table or an exhausted pool is a quick 503."""

    model_config = SettingsConfigDict(**_ENV, env_prefix="DATABASE_")

    # Longest one statement may run (lock waits included); SQLite's busy timeout too.
    statement_timeout_seconds: float = Field(5.0, gt=0)
    # Connections each process keeps open to PostgreSQL, and never more: a request beyond
    # them waits for one (bounded by the pool timeout) rather than opening and closing its
    # own, which cost more than the query. Processes x pool size stays below the server's
    # max_connections.
    pool_size: int = Field(20, ge=1, le=200)
    # Longest a request waits for a free pooled connection.
    pool_timeout_seconds: float = Field(3.0, gt=0)
    connect_timeout_seconds: float = Field(5.0, gt=0)
    # /health/ready answers within this, whatever the database does.
    ready_timeout_seconds: float = Field(2.0, gt=0)


class HttpSettings(BaseSettings):
    model_config = _ENV

    # Browser origins allowed to call the API (CORS): "https://app.example.com,…" or JSON.
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="CORS_ORIGINS"
    )
    # The most one request may take before it is answered 503 (a backstop behind the
    # database's own bounds).
    request_timeout_seconds: float = Field(10.0, gt=0, validation_alias="REQUEST_TIMEOUT_SECONDS")
    # The collector's generation thresholds once the app has started ("gen0,gen1,gen2"):
    # Python's 700 made full collections set the p99 (bench/RESULTS.md, "Garbage collector").
    gc_thresholds: Annotated[tuple[int, int, int], NoDecode] = Field(
        (10_000, 10, 10), validation_alias="GC_THRESHOLDS"
    )

    # Proxies (IPs or CIDRs) whose X-Forwarded-For is believed: "10.0.0.1,10.1.0.0/16" or
    # JSON. The client address it gives is the one rate limits, review, audit and logs use.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("TRUSTED_PROXIES", "RATE_LIMIT_TRUSTED_PROXIES"),
    )

    _split_origins = field_validator("cors_origins", mode="before")(_split_list)
    _split_proxies = field_validator("trusted_proxies", mode="before")(_split_list)

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        entries = [entry.strip() for entry in value if entry.strip()]
        for entry in entries:
            ipaddress.ip_network(entry, strict=False)  # a typo stops the start, loudly
        return entries

    _split_thresholds = field_validator("gc_thresholds", mode="before")(_split_list)

    @field_validator("gc_thresholds")
    @classmethod
    def _check_thresholds(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if value[0] < 1 or min(value) < 0:
            raise ValueError("thresholds are three counts, e.g. '10000,10,10'")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        origins = [origin.strip().rstrip("/") for origin in value if origin.strip()]
        for origin in origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(f"a CORS origin is scheme://host[:port], not {origin!r}")
        return origins


# Where `make run` serves: fine in development, refused as the public address in production.
DEVELOPMENT_BASE_URL = "http://127.0.0.1:8000"


class MailSettings(BaseSettings):
    model_config = _ENV

    # smtp://user:password@host:587 (STARTTLS when the server offers it), smtps://…:465 (TLS
    # from the start), smtp://host:25?starttls=false. Unset: no mail is sent.
    smtp_url: SecretStr | None = Field(None, validation_alias="SMTP_URL")
    mail_from: str = Field("Referrals <noreply@localhost>", validation_alias="MAIL_FROM")
    # The most one delivery may take (connect, TLS, the whole exchange).
    smtp_timeout_seconds: float = Field(10.0, gt=0, validation_alias="SMTP_TIMEOUT_SECONDS")
    # The service's public address, in what other places carry: mail links, the landing
    # page's OpenGraph tags and its QR code (the pages' own resources are relative).
    # Required in production.
    public_base_url: str = Field(DEVELOPMENT_BASE_URL, validation_alias="PUBLIC_BASE_URL")

    @field_validator("smtp_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return _blank_is_none(value)

    @field_validator("public_base_url", mode="before")
    @classmethod
    def _blank_is_development(cls, value: object) -> object:
        return _blank_is_none(value) or DEVELOPMENT_BASE_URL

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")) or value[-3:] == "://":
            raise ValueError("PUBLIC_BASE_URL is http(s)://host[:port][/path]")
        return value


class CacheSettings(BaseSettings):
    model_config = SettingsConfigDict(**_ENV, env_prefix="CACHE_")

    ttl_seconds: int = Field(300, ge=1)
    # How long "no live code" is remembered for an email or a code (0: never): a code's
    # creation, a block lifted and an email change drop it at once, like any cached view.
    missing_ttl_seconds: int = Field(10, ge=0)
    redis_timeout_seconds: float = Field(0.25, gt=0)


class RateLimitSettings(BaseSettings):
    model_config = SettingsConfigDict(**_ENV, env_prefix="RATE_LIMIT_")

    enabled: bool = True
    # "<count>/<seconds>" per client address (and, for login, per account).
    login: str = "10/60"
    # Failed logins of one account from one address: what stops one guesser.
    login_account_address: str = "5/300"
    # Failed logins of one account from all addresses together: the ceiling for guessing
    # spread over many addresses, high enough that one address alone never reaches it.
    login_account: str = "100/3600"
    registration: str = "10/3600"
    # Password-reset requests and confirmations per client address (each request may mail).
    password_reset: str = "5/3600"  # noqa: S105 (a rate, not a password)
    lookup: str = "120/60"

    @field_validator(
        "login",
        "login_account_address",
        "login_account",
        "registration",
        "password_reset",
        "lookup",
    )
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
    # Where `python -m bot` serves its webhook (when TELEGRAM_WEBHOOK_URL is set).
    host: str = Field("127.0.0.1", validation_alias="BOT_HOST")
    port: int = Field(8081, ge=1, le=65535, validation_alias="BOT_PORT")

    @field_validator("bot_token", "webhook_url", "webhook_secret", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return _blank_is_none(value)

    @field_validator("bot_username")
    @classmethod
    def _strip_at(cls, value: str | None) -> str | None:
        return value.strip().lstrip("@") or None if value else None


class IntegrationSettings(BaseSettings):
    model_config = _ENV

    @field_validator("hunter_api_key", "clearbit_api_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return _blank_is_none(value)

    hunter_api_key: SecretStr | None = Field(None, validation_alias="HUNTER_API_KEY")
    hunter_base_url: str = Field("https://api.hunter.io", validation_alias="HUNTER_BASE_URL")
    clearbit_api_key: SecretStr | None = Field(None, validation_alias="CLEARBIT_API_KEY")
    clearbit_base_url: str = Field(
        "https://person.clearbit.com", validation_alias="CLEARBIT_BASE_URL"
    )
    timeout_seconds: float = Field(3.0, gt=0, validation_alias="INTEGRATIONS_TIMEOUT_SECONDS")
    max_retries: int = Field(2, ge=0, validation_alias="INTEGRATIONS_MAX_RETRIES")
    # The most a sign-up waits for Hunter, retries included, before it goes through unchecked.
    hunter_deadline_seconds: float = Field(5.0, gt=0, validation_alias="HUNTER_DEADLINE_SECONDS")
    # Enrichment that Clearbit queued (202) or could not answer is asked again after this
    # delay, doubled each time, until `enrichment_max_attempts` lookups; then it is "failed".
    enrichment_retry_seconds: float = Field(60.0, gt=0, validation_alias="ENRICHMENT_RETRY_SECONDS")
    enrichment_max_attempts: int = Field(5, ge=1, validation_alias="ENRICHMENT_MAX_ATTEMPTS")


def _check_schedule(value: str) -> str:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    try:
        pauses = [float(part) for part in parts]
    except ValueError:
        pauses = [-1.0]
    if any(pause < 0 for pause in pauses) or len(pauses) > 50:
        raise ValueError("a retry schedule is seconds between attempts: '5,300,1800'")
    return ",".join(parts)


class JobSettings(BaseSettings):
    """The job queue and its workers (`make worker`, the bot, the API's in-process one)."""

    model_config = SettingsConfigDict(**_ENV, env_prefix="JOB_")

    # Whether the API process runs a worker of its own: "auto" does on SQLite (the embedded
    # default, one command), not on PostgreSQL (run `make worker` replicas instead).
    in_process: Literal["auto", "true", "false"] = Field("auto", validation_alias="JOBS_IN_PROCESS")
    # Jobs one worker runs at once.
    concurrency: int = Field(8, ge=1, le=200)
    # How often an idle worker looks for due jobs (an enqueue in its own process wakes it).
    poll_seconds: float = Field(1.0, gt=0, le=60)
    # How long a claimed job is its worker's: a job whose worker died runs again after this.
    # Every job is bounded well below it (outside calls time out in seconds).
    lease_seconds: float = Field(60.0, ge=1)
    # A stopping worker lets running jobs finish this long, then puts them back.
    grace_seconds: float = Field(10.0, ge=0)
    # Pauses between attempts of mail and chat messages (webhooks have their own).
    retry_schedule: str = "5,30,120,600,1800"
    # Finished jobs and webhook deliveries are removed after this many days.
    retention_days: int = Field(30, ge=1)

    _schedule = field_validator("retry_schedule")(_check_schedule)


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(**_ENV, env_prefix="WEBHOOK_")

    # Seconds between attempts: the first at once, then one after each pause.
    retry_schedule: str = "5,300,1800,7200,18000,36000,36000"
    # The whole of one attempt: connecting, sending, the answer.
    timeout_seconds: float = Field(10.0, gt=0, le=30)
    # Private, loopback and link-local addresses are refused at delivery unless this is on.
    allow_private_networks: bool = False
    # An endpoint whose deliveries failed this many times in a row is switched off (0: never);
    # operators are warned at half of it.
    disable_after_failures: int = Field(20, ge=0, le=10_000)

    _schedule = field_validator("retry_schedule")(_check_schedule)


class ProgramSettings(BaseSettings):
    """The referral program: rewards at qualification, and when a referral is held."""

    model_config = _ENV

    # Points for each side when a referral qualifies (its first conversion); 0 turns one off.
    # At most 10^9 each, the bound of every grant (core.program.tables.POINTS_MAX).
    reward_referrer_points: int = Field(
        100, ge=0, le=1_000_000_000, validation_alias="REWARD_REFERRER_POINTS"
    )
    reward_friend_points: int = Field(
        50, ge=0, le=1_000_000_000, validation_alias="REWARD_FRIEND_POINTS"
    )
    # More than this many sign-ups with one code within the window are held for review.
    review_burst_limit: int = Field(20, ge=1, validation_alias="REVIEW_BURST_LIMIT")
    review_burst_seconds: int = Field(3600, ge=1, validation_alias="REVIEW_BURST_SECONDS")
    # How often a process writes the link opens it counted (a process that dies loses these).
    link_opens_flush_seconds: float = Field(5.0, gt=0, validation_alias="LINK_OPENS_FLUSH_SECONDS")
    # One visitor opening one code counts once within this many seconds.
    link_open_repeat_seconds: int = Field(
        3600, ge=1, le=30 * 86400, validation_alias="LINK_OPEN_REPEAT_SECONDS"
    )


class Settings(BaseSettings):
    model_config = _ENV

    environment: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite:///./data/referrals.db"
    redis_url: str | None = None
    log_level: str = "INFO"
    # text: one readable line a record; json: one JSON object a line (for log collectors).
    log_format: Literal["text", "json"] = "text"

    auth: AuthSettings = Field(default_factory=AuthSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    mail: MailSettings = Field(default_factory=MailSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    integrations: IntegrationSettings = Field(default_factory=IntegrationSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    program: ProgramSettings = Field(default_factory=ProgramSettings)

    @field_validator("redis_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return _blank_is_none(value)

    @model_validator(mode="after")
    def _public_address_in_production(self) -> Settings:
        """Mail links, the OpenGraph tags and the QR code carry the public address: in
        production it must be said, not guessed from the development default."""
        if self.environment == "production" and self.mail.public_base_url == DEVELOPMENT_BASE_URL:
            raise ValueError(
                "PUBLIC_BASE_URL must be set in production: the address people open "
                "(https://referrals.example.com), used in mail links, previews and QR codes"
            )
        return self

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> Settings:
        """A lease shorter than one attempt would hand a job still running to a second
        worker: the lease is at least twice the longest attempt's own bound."""
        integrations = self.integrations
        longest = max(
            self.webhooks.timeout_seconds,
            self.mail.smtp_timeout_seconds,
            integrations.timeout_seconds * (integrations.max_retries + 1),
        )
        if self.jobs.lease_seconds < 2 * longest:
            raise ValueError(
                f"JOB_LEASE_SECONDS={self.jobs.lease_seconds:g} must be at least twice the "
                f"longest attempt ({longest:g} s: WEBHOOK_TIMEOUT_SECONDS, SMTP_TIMEOUT_SECONDS, "
                "INTEGRATIONS_TIMEOUT_SECONDS x retries)"
            )
        return self

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
                self.auth.secret_key = SecretStr(development_secret(self.database_url))
        return self


def development_secret(database_url: str) -> str:
    """Development's signing secret when SECRET_KEY is unset: made once and kept beside the
    SQLite file (else in ./data), so every process of the deployment signs alike and tokens
    survive a restart. Never used in production, which requires SECRET_KEY."""
    from sqlalchemy.engine import make_url  # the settings module imports nothing heavy at top

    parsed = make_url(database_url)
    folder = Path("data")
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        folder = Path(parsed.database).expanduser().parent
    path = folder / ".development-secret-key"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    made = secrets.token_urlsafe(48)
    try:  # whichever process makes it first wins; the others read that one
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            kept = path.read_text(encoding="utf-8").strip()
            if kept:
                return kept
            time.sleep(0.01)  # its maker is writing it (start-up, before any event loop)
        raise RuntimeError(f"{path} is empty: remove it or set SECRET_KEY") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(made)
    return made


@lru_cache
def get_settings() -> Settings:
    return Settings()


def describe(error: ValidationError) -> str:
    """One line for the first problem of invalid settings, naming the setting."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"invalid setting {where}: {message}" if where else message


def workers_problem(settings: Settings, workers: str) -> str | None:
    """Why this many API workers cannot run (None: they can). Several workers must share one
    cache and one set of rate-limit counters: Redis. In-process ones would each see a part."""
    if not workers.isdigit() or not 1 <= int(workers) <= 64:
        return f"WEB_CONCURRENCY={workers!r} is not a number of workers from 1 to 64"
    if int(workers) > 1 and not settings.redis_url:
        return (
            f"WEB_CONCURRENCY={workers} needs REDIS_URL: without Redis every worker keeps its "
            "own cache and rate limits (run one worker, or set REDIS_URL)"
        )
    return None


def settings_or_exit(program: str) -> Settings:
    """The environment's settings, or one line on stderr and exit status 2 (no traceback)."""
    try:
        return get_settings()
    except ValidationError as exc:
        print(f"{program}: {describe(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
