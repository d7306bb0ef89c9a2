"""Settings that cannot work together are refused at start, with the setting named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.infra.settings import Settings


def _settings(**values: object) -> Settings:
    return Settings(environment="test", **values)  # type: ignore[arg-type]


def test_a_job_lease_must_outlast_an_attempt_twice_over(monkeypatch) -> None:
    monkeypatch.setenv("JOB_LEASE_SECONDS", "19")
    with pytest.raises(ValidationError, match="JOB_LEASE_SECONDS=19 must be at least twice"):
        _settings()  # a webhook attempt may take 10 s
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("SMTP_TIMEOUT_SECONDS", "5")
    assert _settings().jobs.lease_seconds == 19
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", "10")
    with pytest.raises(ValidationError, match="WEBHOOK_TIMEOUT_SECONDS"):
        _settings()


def test_trusted_proxies_are_their_own_setting_under_either_name(monkeypatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_ENABLED", "false")
    monkeypatch.setenv("RATE_LIMIT_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1")
    assert _settings().http.trusted_proxies == ["10.0.0.0/8", "192.168.1.1"]
    monkeypatch.setenv("TRUSTED_PROXIES", "172.16.0.0/12")
    assert _settings().http.trusted_proxies == ["172.16.0.0/12"]
    monkeypatch.setenv("TRUSTED_PROXIES", "not-an-address")
    with pytest.raises(ValidationError):
        _settings()


def test_production_needs_its_public_address(monkeypatch) -> None:
    monkeypatch.setenv("SECRET_KEY", "s" * 48)
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    with pytest.raises(ValidationError, match="PUBLIC_BASE_URL must be set in production"):
        Settings(environment="production")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://referrals.example.com/")
    settings = Settings(environment="production")
    assert settings.mail.public_base_url == "https://referrals.example.com"
    monkeypatch.setenv("PUBLIC_BASE_URL", "referrals.example.com")
    with pytest.raises(ValidationError, match="PUBLIC_BASE_URL is http"):
        Settings(environment="production")
