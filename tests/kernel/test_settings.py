from __future__ import annotations

import base64
import os

import pytest

from leadline.errors import ConfigError
from leadline.settings import (
    Settings,
    estimate_entropy_bits,
    parse_master_keys,
    production_problems,
)

pytestmark = pytest.mark.unit
# Every provider secret production refuses when weak (README, "Security model").
PROVIDER_SECRET_FIELDS = (
    "twilio_auth_token",
    "stripe_webhook_secret",
    "telegram_secret_token",
    "meta_app_secret",
    "meta_verify_token",
)

GOOD_KEY = "k1:" + base64.b64encode(os.urandom(32)).decode()
PATTERNED_KEYS = [
    b"0123456789abcdef" * 2,  # 16 distinct bytes, repeated
    bytes(range(32)),  # 32 distinct bytes, but a run
    bytes(range(0, 256, 8)),  # a run with a stride
    os.urandom(16) * 2,  # random half, repeated
    os.urandom(8) * 4,
]


def production(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "leadline_env": "production",
        "leadline_database_url": "postgresql://owner@db.internal/leadline",
        "leadline_app_database_url": "postgresql://tenant@db.internal/leadline",
        "leadline_redis_url": "redis://cache.internal:6379/0",
        "leadline_master_keys": GOOD_KEY,
        "leadline_public_url": "https://leads.example.com",
        "leadline_ops_token": "Zq8v-3LmR0tXw9Yb_c2NfK7pHs1dGj4eUa6iVo5rTy0",
        "twilio_auth_token": "3f9a1c77e04b2d58a6c1f0e9d3b7a214",
        "stripe_webhook_secret": "whsec_9fKq2LmZ7xVt4RbN1cWy8HdJ3sPg",
        "telegram_secret_token": "tg_Hx7kQ2mV9pL4wZr8",
        "meta_app_secret": "b81c4e0f9a27d36e5f1a8c0b9d2e7f43",
        "meta_verify_token": "mv-Rt5yP1qK8nXz3Lw",
        "twilio_api_base": "https://api.twilio.com",
        "telegram_api_base": "https://api.telegram.org",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def test_complete_production_settings_are_accepted() -> None:
    settings = production()
    assert production_problems(settings) == []
    assert settings.require_production_ready() is None  # starting is not refused


def test_the_same_settings_outside_production_skip_the_checks() -> None:
    weak_token = {"leadline_ops_token": "a" * 32}
    with pytest.raises(ConfigError, match="LEADLINE_OPS_TOKEN looks guessable"):
        production(**weak_token).require_production_ready()
    relaxed = production(leadline_env="development", **weak_token)
    assert production_problems(relaxed) != []
    assert relaxed.require_production_ready() is None  # development starts all the same


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
        ({"leadline_ops_token": "a" * 32}, "LEADLINE_OPS_TOKEN looks guessable"),
        ({"leadline_ops_token": "abcdefghijklmnopqrstuvwxyz012345"}, "looks guessable"),
        ({"leadline_ops_token": "0123456789abcdef" * 2}, "looks guessable"),
        ({"twilio_api_base": "https://127.0.0.1:8025"}, "TWILIO_API_BASE points at the provider"),
        ({"telegram_api_base": "https://localhost:8025"}, "TELEGRAM_API_BASE points at the"),
        ({"twilio_api_base": "https://[::1]:8025"}, "sandbox"),
        ({"leadline_app_database_url": None}, "LEADLINE_APP_DATABASE_URL is required"),
        (
            {"leadline_app_database_url": "postgresql://owner@db.internal/leadline"},
            "another role than the owner",
        ),
    ],
)
def test_production_refuses_unsafe_settings(override: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        production(**override).require_production_ready()


@pytest.mark.parametrize(
    "key", PATTERNED_KEYS, ids=["repeated", "run", "stride", "random-half", "random-quarter"]
)
def test_production_refuses_a_patterned_master_key(key: bytes) -> None:
    encoded = "k1:" + base64.b64encode(key).decode()
    with pytest.raises(ConfigError, match="does not look random"):
        production(leadline_master_keys=encoded).require_production_ready()


@pytest.mark.parametrize(
    "value",
    ["x", "short-secret", "a" * 40, "abcdefghijklmnopqrstuvwxyz", "abab" * 5],
)
@pytest.mark.parametrize("secret", PROVIDER_SECRET_FIELDS)
def test_production_refuses_weak_provider_secrets(secret: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{secret.upper()} is too short or too regular"):
        production(**{secret: value}).require_production_ready()


def test_entropy_estimate_scores_random_tokens_high_and_patterns_low() -> None:
    assert estimate_entropy_bits(base64.urlsafe_b64encode(os.urandom(32)).decode()) > 150
    assert estimate_entropy_bits(os.urandom(16).hex()) > 90
    for weak in ("a" * 64, "abcdef" * 10, "0123456789" * 5, ""):
        assert estimate_entropy_bits(weak) < 60


def test_trusted_proxies_are_parsed_as_networks() -> None:
    settings = Settings(leadline_trusted_proxies="10.0.0.0/8, 127.0.0.1 ,::1")
    assert [str(n) for n in settings.trusted_proxy_networks] == [
        "10.0.0.0/8",
        "127.0.0.1/32",
        "::1/128",
    ]
    assert Settings().trusted_proxy_networks == ()
    with pytest.raises(ValueError, match="CIDRs"):
        Settings(leadline_trusted_proxies="10.0.0.0/33")


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


@pytest.mark.parametrize("secret", PROVIDER_SECRET_FIELDS)
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
