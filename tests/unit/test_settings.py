from __future__ import annotations

import base64
import os

import pytest

from leadline.errors import ConfigError
from leadline.settings import Settings, parse_master_keys

GOOD_KEY = "k1:" + base64.b64encode(os.urandom(32)).decode()


def production(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "leadline_env": "production",
        "leadline_database_url": "postgresql://db.internal/leadline",
        "leadline_redis_url": "redis://cache.internal:6379/0",
        "leadline_master_keys": GOOD_KEY,
        "leadline_public_url": "https://leads.example.com",
        "leadline_ops_token": "ops-token-value-long-enough-to-guess-never",
        "twilio_auth_token": "twilio-token",
        "stripe_webhook_secret": "whsec_stripe",
        "telegram_secret_token": "telegram-secret",
        "meta_app_secret": "meta-secret",
        "meta_verify_token": "meta-verify",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def test_complete_production_settings_are_accepted() -> None:
    production().require_production_ready()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"leadline_database_url": None}, "LEADLINE_DATABASE_URL"),
        ({"leadline_redis_url": None}, "LEADLINE_REDIS_URL"),
        ({"leadline_master_keys": None}, "LEADLINE_MASTER_KEYS is required"),
        ({"leadline_master_keys": "k1:" + base64.b64encode(b"short").decode()}, "32 bytes"),
        ({"leadline_master_keys": "k1:" + base64.b64encode(b"a" * 32).decode()}, "random"),
        ({"leadline_master_keys": "k1:not base64!"}, "base64"),
        ({"leadline_master_keys": "nocolon"}, "kid:base64"),
        ({"leadline_allow_private_webhook_targets": True}, "development only"),
        ({"leadline_public_url": "http://leads.example.com"}, "https"),
        ({"leadline_ops_token": None}, "LEADLINE_OPS_TOKEN is required"),
        ({"leadline_ops_token": "short-ops-token"}, "at least 32 characters"),
    ],
)
def test_production_refuses_unsafe_settings(override: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        production(**override).require_production_ready()


def test_error_never_contains_the_key_material() -> None:
    bad = "k1:" + base64.b64encode(b"b" * 31).decode()
    with pytest.raises(ConfigError) as info:
        production(leadline_master_keys=bad).require_production_ready()
    assert bad.split(":")[1] not in str(info.value)


def test_master_keys_primary_first_and_ids_unique() -> None:
    second = "k2:" + base64.b64encode(os.urandom(32)).decode()
    assert [kid for kid, _ in parse_master_keys(f"{second},{GOOD_KEY}")] == ["k2", "k1"]
    with pytest.raises(ConfigError, match="repeats"):
        parse_master_keys(f"{GOOD_KEY},{GOOD_KEY}")


def test_settings_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADLINE_ENV", "production")
    monkeypatch.setenv("TWILIO_API_BASE", "http://127.0.0.1:8025")
    settings = Settings()
    assert settings.is_production and settings.twilio_api_base == "http://127.0.0.1:8025"


@pytest.mark.parametrize(
    "secret",
    [
        "twilio_auth_token",
        "stripe_webhook_secret",
        "telegram_secret_token",
        "meta_app_secret",
        "meta_verify_token",
    ],
)
def test_production_refuses_a_missing_provider_secret(secret: str) -> None:
    with pytest.raises(ConfigError, match=secret.upper()):
        production(**{secret: None}).require_production_ready()
    with pytest.raises(ConfigError, match=secret.upper()):
        production(**{secret: "  "}).require_production_ready()


def test_only_enabled_providers_need_secrets() -> None:
    settings = production(
        leadline_intake_providers="stripe", twilio_auth_token=None, meta_app_secret=None
    )
    settings.require_production_ready()
    assert settings.enabled_providers == {"stripe"}
    with pytest.raises(ValueError, match="unknown providers"):
        production(leadline_intake_providers="stripe,fax")
