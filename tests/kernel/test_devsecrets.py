from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

from leadline.devsecrets import (
    DEV_SECRETS_FILE,
    DevSecrets,
    development_provider_secrets,
    load_or_create_dev_secrets,
    provider_secret,
)
from leadline.errors import ConfigError
from leadline.settings import PROVIDER_SECRETS, Settings, missing_provider_secrets

pytestmark = pytest.mark.unit

PROVIDER_ENV = (
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "STRIPE_WEBHOOK_SECRET",
    "TELEGRAM_SECRET_TOKEN",
    "TELEGRAM_BOT_TOKEN",
    "META_APP_SECRET",
    "META_VERIFY_TOKEN",
)


@pytest.fixture(autouse=True)
def no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)


def settings_in(state_dir: Path, **values: object) -> Settings:
    return Settings(leadline_state_dir=str(state_dir), **values)  # type: ignore[arg-type]


def test_first_use_writes_random_secrets_readable_only_by_the_owner(tmp_path: Path) -> None:
    made = load_or_create_dev_secrets(tmp_path)
    path = tmp_path / DEV_SECRETS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["stripe_webhook_secret"] == made.stripe_webhook_secret
    assert made.stripe_webhook_secret.startswith("whsec_")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,256}", made.telegram_secret_token)
    assert re.fullmatch(r"\d+:[A-Za-z0-9_-]+", made.telegram_bot_token)
    assert re.fullmatch(r"AC[0-9a-f]{32}", made.twilio_account_sid)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    assert load_or_create_dev_secrets(tmp_path) == made
    assert load_or_create_dev_secrets(tmp_path / "other") != made


def test_every_enabled_provider_route_can_verify_with_them(tmp_path: Path) -> None:
    made = development_provider_secrets(settings_in(tmp_path))
    assert made.environment()["TWILIO_AUTH_TOKEN"] == made.twilio_auth_token
    every = {name for names in PROVIDER_SECRETS.values() for name in names}
    as_settings = settings_in(tmp_path, **{name: getattr(made, name) for name in every})
    assert missing_provider_secrets(as_settings) == []


def test_a_secret_set_in_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = load_or_create_dev_secrets(tmp_path)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_chosen_by_the_user")
    monkeypatch.setenv("TWILIO_FROM_NUMBER", "+14155550100")
    used = development_provider_secrets(settings_in(tmp_path))
    assert used.stripe_webhook_secret == "whsec_chosen_by_the_user"
    assert used.twilio_from_number == "+14155550100"
    assert used.meta_app_secret == stored.meta_app_secret
    assert provider_secret(settings_in(tmp_path), "stripe_webhook_secret") == (
        "whsec_chosen_by_the_user"
    )
    assert load_or_create_dev_secrets(tmp_path) == stored  # the file is left as it was


def test_blank_environment_values_do_not_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = load_or_create_dev_secrets(tmp_path)
    monkeypatch.setenv("META_APP_SECRET", "  ")
    assert development_provider_secrets(settings_in(tmp_path)).meta_app_secret == (
        stored.meta_app_secret
    )


def test_production_never_makes_the_file(tmp_path: Path) -> None:
    production = settings_in(tmp_path, leadline_env="production")
    with pytest.raises(ConfigError, match="never used in production"):
        development_provider_secrets(production)
    with pytest.raises(ConfigError, match="never used in production"):
        provider_secret(production, "twilio_auth_token")
    assert not (tmp_path / DEV_SECRETS_FILE).exists()


def test_production_never_reads_the_file(tmp_path: Path) -> None:
    (tmp_path / DEV_SECRETS_FILE).write_text("not json: reading it would say 'damaged'")
    production = settings_in(tmp_path, leadline_env="production")
    for call in (
        lambda: development_provider_secrets(production),
        lambda: provider_secret(production, "meta_app_secret"),
    ):
        with pytest.raises(ConfigError) as refused:
            call()
        assert "never used in production" in str(refused.value)


def test_a_client_never_creates_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no TELEGRAM_SECRET_TOKEN and no .*dev-secrets\.json"):
        provider_secret(settings_in(tmp_path), "telegram_secret_token")
    assert not (tmp_path / DEV_SECRETS_FILE).exists()
    chosen = settings_in(tmp_path, telegram_secret_token="set-by-hand")
    assert provider_secret(chosen, "telegram_secret_token") == "set-by-hand"


def test_a_damaged_file_is_named_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / DEV_SECRETS_FILE).write_text('{"twilio_auth_token": 1}')
    with pytest.raises(ConfigError, match=r"dev-secrets\.json is damaged \(delete it"):
        development_provider_secrets(settings_in(tmp_path))


def test_loose_permissions_are_tightened(tmp_path: Path) -> None:
    made = load_or_create_dev_secrets(tmp_path)
    path = tmp_path / DEV_SECRETS_FILE
    path.chmod(0o644)
    assert load_or_create_dev_secrets(tmp_path) == made
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_environment_names_are_the_settings_names() -> None:
    fields = DevSecrets.__dataclass_fields__
    assert {name.upper() for name in fields} == set(PROVIDER_ENV)
    assert all(name in Settings.model_fields for name in fields)
