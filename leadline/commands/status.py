"""`leadline status`: the readiness checks of the intake's `GET /readyz`, for operators at a
shell: Postgres, Redis, the configured broker, migrations."""

from __future__ import annotations

import typer

from leadline.commands.common import JsonOption, emit, run_guarded


def status(as_json: bool = JsonOption) -> None:
    """Postgres, Redis and the broker reachable, migrations current. Exit 1 when not ready."""
    from leadline.bootstrap import prepared_settings
    from models.db import Database
    from workers.readiness import readiness
    from workers.runtime import build_broker

    def run() -> bool:
        settings = prepared_settings()
        assert settings.leadline_database_url is not None and settings.broker_url is not None
        db = Database(settings.leadline_database_url, settings.leadline_app_database_url, 1)
        broker = build_broker(settings.broker_url, settings.leadline_redis_namespace)
        try:
            report = readiness(db, broker, settings.leadline_redis_url)
        finally:
            broker.close()
            db.dispose()
        lines = [f"{name:<11} {result}" for name, result in report.checks.items()]
        state = "ready" if report.ready else "unready"
        emit(report.as_dict(), as_json, "\n".join([state, *lines]))
        return report.ready

    if not run_guarded(run, as_json):
        raise typer.Exit(1)
