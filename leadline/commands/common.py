"""Shared pieces of the CLI: output, and wiring settings to the database and broker.

The CLI is the composition root: it is the one place in leadline/ that imports the packages
to its right (models, workers, tasks, intake, scheduler).
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

import typer

from leadline.bootstrap import prepared_settings, setup_logging
from leadline.errors import LeadlineError
from leadline.settings import Settings

JsonOption = typer.Option(False, "--json", help="Machine-readable output.")


def emit(data: dict[str, Any] | list[Any], as_json: bool, text: str) -> None:
    if as_json:
        typer.echo(json.dumps(data, default=str, indent=None))
    else:
        typer.echo(text)


def fail(message: str, as_json: bool = False, code: int = 1) -> None:
    if as_json:
        typer.echo(json.dumps({"error": message}), err=True)
    else:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def parse_uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise typer.BadParameter(f"{what} must be a UUID") from None


def open_runtime(settings: Settings | None = None) -> Any:
    """Settings → logging → broker with every actor → task context. Returns the context."""
    import tasks  # noqa: F401  (registers every actor)
    from tasks.context import build_context, set_context
    from workers.runtime import build_broker, install_broker, use_database

    settings = prepared_settings(settings)
    setup_logging(settings)
    assert settings.leadline_redis_url is not None
    install_broker(build_broker(settings.leadline_redis_url, settings.leadline_redis_namespace))
    context = build_context(settings)
    set_context(context)
    use_database(context.db)
    return context


def run_guarded(fn: Any, as_json: bool) -> Any:
    """Turn LeadlineErrors into a clear message and exit code 1, never a traceback."""
    try:
        return fn()
    except LeadlineError as exc:
        fail(str(exc), as_json)
    except KeyboardInterrupt:
        sys.exit(130)
