"""What actors need at run time, set once by the composition root (CLI or tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

from leadline.bootstrap import prepared_settings, setup_logging
from leadline.clock import Clock, utcnow
from leadline.errors import ConfigError
from leadline.objectstore import ObjectStore, open_store
from leadline.settings import Settings
from models.crypto import Keyring
from models.db import Database
from models.keys import KeyCache


@dataclass
class TaskContext:
    settings: Settings
    db: Database
    keys: KeyCache
    clock: Clock = field(default=utcnow)
    _backups: ObjectStore | None = field(default=None, repr=False)

    @property
    def keyring(self) -> Keyring:
        return self.keys.keyring

    @property
    def backups(self) -> ObjectStore:
        """The backup store (LEADLINE_BACKUP_URL), opened on first use."""
        if self._backups is None:
            self._backups = self.open_store(self.settings.backup_url)
        return self._backups

    def open_store(self, url: str) -> ObjectStore:
        """A backup store (a directory, or S3 through the configured endpoint): restore --from."""
        return open_store(url, self.settings.leadline_s3_endpoint_url)


_current: TaskContext | None = None


def build_context(settings: Settings, clock: Clock = utcnow) -> TaskContext:
    if settings.leadline_database_url is None:
        raise ConfigError("LEADLINE_DATABASE_URL is not set")
    keyring = Keyring(keys=tuple(settings.master_keys()))
    db = Database(settings.leadline_database_url, settings.leadline_app_database_url)
    return TaskContext(settings=settings, db=db, keys=KeyCache(keyring), clock=clock)


def set_context(context: TaskContext) -> None:
    global _current
    _current = context


def clear_context() -> None:
    """Forget the process's context: an in-process CLI run on other settings builds its own."""
    global _current
    _current = None


def current_context() -> TaskContext | None:
    """The context set in this process, if any (the CLI reuses it instead of building one)."""
    return _current


def get_context() -> TaskContext:
    if _current is None:
        raise ConfigError("the task context is not configured (call tasks.context.set_context)")
    return _current


def open_runtime(settings: Settings | None = None) -> TaskContext:
    """Settings → logging → broker with every actor → task context. Returns the context.

    Called by each composition root (the CLI, the intake's ASGI factory, tests). One runtime
    per process: without settings, a context already set in this process is returned
    (commands run in-process by tests share the test's database pool and broker)."""
    import tasks  # noqa: F401  (registers every actor)
    from workers.runtime import build_broker, install_broker, use_database

    existing = current_context()
    if settings is None and existing is not None:
        return existing

    settings = prepared_settings(settings)
    setup_logging(settings)
    assert settings.broker_url is not None
    install_broker(build_broker(settings.broker_url, settings.leadline_redis_namespace))
    context = build_context(settings)
    set_context(context)
    use_database(context.db)
    return context
