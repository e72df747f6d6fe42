"""Fixtures of the messaging tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from typer.testing import CliRunner


@pytest.fixture
def leadline_cli(
    settings: Any, context: Any, broker: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Any]]:
    """Runs `leadline ARGS` in process against the test database, then restores the runtime
    (the CLI installs its own broker and task context)."""
    from leadline.cli import app
    from leadline.settings import get_settings
    from tasks.context import set_context
    from workers.runtime import install_broker

    env = {
        "LEADLINE_ENV": "test",
        "LEADLINE_DATABASE_URL": settings.leadline_database_url,
        "LEADLINE_REDIS_URL": settings.leadline_redis_url,
        "LEADLINE_REDIS_NAMESPACE": settings.leadline_redis_namespace,
        "LEADLINE_MASTER_KEYS": settings.leadline_master_keys.get_secret_value(),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args))
    get_settings.cache_clear()
    install_broker(broker)
    set_context(context)
