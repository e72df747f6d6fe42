"""Development provider secrets: made once per state directory, so every provider route of a
local stack verifies requests, and `leadline simulate` can sign them.

`leadline up` passes them to its children; a secret set in the environment always wins. The
file is `<LEADLINE_STATE_DIR>/dev-secrets.json`, mode 0600. Production never makes or reads it.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import tempfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from pydantic import SecretStr

from leadline.errors import ConfigError
from leadline.settings import Settings

DEV_SECRETS_FILE = "dev-secrets.json"
DEV_ACCOUNT_SID = "AC" + "0" * 32
DEV_FROM_NUMBER = "+15005550006"  # Twilio's magic "valid sender" test number


@dataclass(frozen=True)
class DevSecrets:
    """One value per provider setting; field names are the settings' (lower-case env names)."""

    twilio_account_sid: str
    twilio_auth_token: str
    twilio_from_number: str
    stripe_webhook_secret: str
    telegram_secret_token: str
    telegram_bot_token: str
    meta_app_secret: str
    meta_verify_token: str

    def environment(self) -> dict[str, str]:
        """As environment variables for the stack's processes."""
        return {name.upper(): value for name, value in asdict(self).items()}


def generate_dev_secrets() -> DevSecrets:
    return DevSecrets(
        twilio_account_sid=DEV_ACCOUNT_SID,
        twilio_auth_token=secrets.token_hex(16),  # Twilio auth tokens are 32 hex characters
        twilio_from_number=DEV_FROM_NUMBER,
        stripe_webhook_secret="whsec_" + secrets.token_urlsafe(32),
        # Telegram allows A-Z, a-z, 0-9, _ and - in a secret_token.
        telegram_secret_token=secrets.token_urlsafe(32),
        telegram_bot_token=f"{secrets.randbelow(9 * 10**9) + 10**9}:{secrets.token_urlsafe(26)}",
        meta_app_secret=secrets.token_hex(16),
        meta_verify_token=secrets.token_urlsafe(24),
    )


def dev_secrets_path(state_dir: Path | str) -> Path:
    return Path(state_dir) / DEV_SECRETS_FILE


def read_dev_secrets(state_dir: Path | str) -> DevSecrets | None:
    """The stored secrets, or None when there is no file yet. ConfigError if it is unusable."""
    path = dev_secrets_path(state_dir)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    wanted = [field.name for field in fields(DevSecrets)]
    if not isinstance(data, dict) or not all(isinstance(data.get(n), str) for n in wanted):
        raise ConfigError(f"{path} is damaged (delete it; `leadline up` writes a new one)")
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)
    return DevSecrets(**{name: data[name] for name in wanted})


def load_or_create_dev_secrets(state_dir: Path | str) -> DevSecrets:
    """The stored secrets; on first use, new random ones written with mode 0600."""
    existing = read_dev_secrets(state_dir)
    if existing is not None:
        return existing
    path = dev_secrets_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".dev-secrets.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(generate_dev_secrets()), handle, indent=2)
        # link() fails if the file appeared meanwhile: two `up`s racing keep one set of secrets.
        os.link(temp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(temp)
    created = read_dev_secrets(state_dir)
    assert created is not None
    return created


def with_settings(stored: DevSecrets, settings: Settings) -> DevSecrets:
    """Every value set (and not blank) in the settings, i.e. the environment, wins."""
    overrides: dict[str, str] = {}
    for field in fields(DevSecrets):
        value = configured_value(settings, field.name)
        if value is not None:
            overrides[field.name] = value
    return replace(stored, **overrides)


def configured_value(settings: Settings, name: str) -> str | None:
    value = getattr(settings, name)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value if isinstance(value, str) and value.strip() else None


def development_provider_secrets(settings: Settings) -> DevSecrets:
    """What a development stack runs with: each secret from the environment, else the file
    (created on first use). Production refuses before touching the file."""
    refuse_in_production(settings)
    return with_settings(load_or_create_dev_secrets(settings.leadline_state_dir), settings)


def provider_secret(settings: Settings, name: str) -> str:
    """One secret (a DevSecrets field name) for a client of a running development stack: the
    environment's, else the file's. Never creates the file; ConfigError when neither has it."""
    refuse_in_production(settings)
    value = configured_value(settings, name)
    if value is not None:
        return value
    stored = read_dev_secrets(settings.leadline_state_dir)
    if stored is None:
        raise ConfigError(
            f"no {name.upper()} and no {dev_secrets_path(settings.leadline_state_dir)} "
            "(start the stack with make run, or set the variable)"
        )
    secret: str = getattr(stored, name)
    return secret


def refuse_in_production(settings: Settings) -> None:
    if settings.is_production:
        raise ConfigError(
            "development provider secrets are never used in production "
            "(set the providers' secrets in the environment)"
        )
