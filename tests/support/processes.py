"""Child processes of the tests: the `leadline` command, in an environment on the test's own
services."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pydantic import SecretStr

from leadline.settings import Settings

LEADLINE = str(Path(sys.executable).parent / "leadline")
SECRETS = {
    "TWILIO_AUTH_TOKEN": "twilio_auth_token",
    "TELEGRAM_BOT_TOKEN": "telegram_bot_token",
    "TELEGRAM_SECRET_TOKEN": "telegram_secret_token",
    "STRIPE_WEBHOOK_SECRET": "stripe_webhook_secret",
    "META_APP_SECRET": "meta_app_secret",
    "META_VERIFY_TOKEN": "meta_verify_token",
    "POSTMARK_SERVER_TOKEN": "postmark_server_token",
    "POSTMARK_WEBHOOK_USER": "postmark_webhook_user",
    "POSTMARK_WEBHOOK_PASSWORD": "postmark_webhook_password",
}


def child_env(settings: Settings, *, providers: bool = True, **extra: str) -> dict[str, str]:
    """The environment of a `leadline` child: the test's database, Redis namespace, master
    key, state directory, backup store and provider sandbox; nothing inherited from this
    process's own LEADLINE_ or provider settings. Without `providers`, the provider settings
    are left out too (`leadline up` then makes its own sandbox and development secrets)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LEADLINE_", "TWILIO_", "POSTMARK_"))
    }
    env.update(
        LEADLINE_ENV="test",
        LEADLINE_DATABASE_URL=str(settings.leadline_database_url),
        LEADLINE_REDIS_URL=str(settings.leadline_redis_url),
        LEADLINE_REDIS_NAMESPACE=settings.leadline_redis_namespace,
        LEADLINE_MASTER_KEYS=secret(settings.leadline_master_keys),
        LEADLINE_STATE_DIR=settings.leadline_state_dir,
        LEADLINE_BACKUP_URL=settings.backup_url,
        LEADLINE_S3_ENDPOINT_URL=settings.leadline_s3_endpoint_url or "",
        LEADLINE_LOG_LEVEL="WARNING",
        # Test runs share the machine (and some start two workers): no fixed metrics ports.
        LEADLINE_WORKER_METRICS_PORT="0",
        LEADLINE_SCHEDULER_METRICS_PORT="0",
    )
    if settings.leadline_broker_url is not None:  # the RabbitMQ half of `both_brokers`
        env["LEADLINE_BROKER_URL"] = settings.leadline_broker_url
    if providers:
        env.update(provider_env(settings))
    env.update(extra)
    return env


def provider_env(settings: Settings) -> dict[str, str]:
    """The provider sandbox and the test secrets the settings carry."""
    env = {
        "TELEGRAM_API_BASE": settings.telegram_api_base,
        "POSTMARK_API_BASE": settings.postmark_api_base,
    }
    if settings.twilio_account_sid:
        env["TWILIO_ACCOUNT_SID"] = settings.twilio_account_sid
    if settings.twilio_api_base:
        env["TWILIO_API_BASE"] = settings.twilio_api_base
    for name, field in SECRETS.items():
        value = getattr(settings, field)
        if value is not None:
            env[name] = secret(value)
    return env


def secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""
