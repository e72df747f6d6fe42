"""Composition helpers: settings made ready (embedded services, dev key), logging, broker.

Only the CLI and tests call these; library code receives what it needs as arguments.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from pydantic import SecretStr

from leadline.embedded import EmbeddedServices, start_embedded
from leadline.errors import ConfigError
from leadline.logging import configure_logging, get_logger
from leadline.settings import Settings, get_settings

log = get_logger(__name__)
_embedded: EmbeddedServices | None = None


def prepared_settings(settings: Settings | None = None) -> Settings:
    """Settings with embedded services and a development master key filled in if needed."""
    settings = settings or get_settings()
    settings.require_production_ready()
    settings = with_embedded_services(settings)
    return with_dev_master_key(settings)


def with_embedded_services(settings: Settings) -> Settings:
    global _embedded
    if not settings.uses_embedded_services:
        return settings
    if settings.is_production:
        raise ConfigError("production refuses embedded services")
    state_dir = Path(settings.leadline_state_dir).resolve()
    _embedded = start_embedded(
        state_dir,
        database=settings.leadline_database_url is None,
        redis=settings.leadline_redis_url is None,
    )
    updates: dict[str, object] = {}
    if _embedded.database_url:
        updates["leadline_database_url"] = _embedded.database_url
    if _embedded.redis_url:
        updates["leadline_redis_url"] = _embedded.redis_url
    return settings.model_copy(update=updates)


def with_dev_master_key(settings: Settings) -> Settings:
    """Development only: a master key kept in the state directory so data survives restarts."""
    if settings.leadline_master_keys is not None or settings.is_production:
        return settings
    key_file = Path(settings.leadline_state_dir) / "dev-master.key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text("dev1:" + base64.b64encode(os.urandom(32)).decode())
        key_file.chmod(0o600)
    secret = SecretStr(key_file.read_text().strip())
    return settings.model_copy(update={"leadline_master_keys": secret})


def child_environment(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for processes started by `leadline up`: same services, same keys."""
    env = dict(os.environ)
    env["LEADLINE_DATABASE_URL"] = settings.leadline_database_url or ""
    env["LEADLINE_REDIS_URL"] = settings.leadline_redis_url or ""
    env["LEADLINE_REDIS_NAMESPACE"] = settings.leadline_redis_namespace
    env["LEADLINE_STATE_DIR"] = settings.leadline_state_dir
    # The resolved store, as a URL: the children agree with this process whatever it was given.
    env.pop("LEADLINE_BACKUP_DIR", None)
    env["LEADLINE_BACKUP_URL"] = settings.backup_url
    env["LEADLINE_WORKER_METRICS_PORT"] = str(settings.leadline_worker_metrics_port)
    env["LEADLINE_SCHEDULER_METRICS_PORT"] = str(settings.leadline_scheduler_metrics_port)
    if settings.leadline_broker_url is not None:
        env["LEADLINE_BROKER_URL"] = settings.leadline_broker_url
    if settings.leadline_app_database_url is not None:
        env["LEADLINE_APP_DATABASE_URL"] = settings.leadline_app_database_url
    if settings.leadline_master_keys is not None:
        env["LEADLINE_MASTER_KEYS"] = settings.leadline_master_keys.get_secret_value()
    env.update(extra or {})
    return env


def setup_logging(settings: Settings) -> None:
    configure_logging(settings.leadline_log_level)


def stop_embedded() -> None:
    global _embedded
    if _embedded is not None:
        _embedded.stop()
        _embedded = None
