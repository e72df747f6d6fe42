"""Long-running roles: `migrate`, `intake`, `worker`."""

from __future__ import annotations

import gc
import signal
import threading
from typing import Any

import typer

from leadline.commands.common import JsonOption, emit, fail, run_guarded
from tasks.context import open_runtime


def migrate(as_json: bool = JsonOption) -> None:
    """Create or upgrade the schema, roles and row-level security policies."""
    from models.migrate import current_heads, upgrade

    def run() -> None:
        context = open_runtime()
        upgrade(context.db.owner_engine)
        heads = sorted(current_heads(context.db.owner_engine))
        emit({"heads": heads}, as_json, f"database at revision {', '.join(heads)}")

    run_guarded(run, as_json)


def intake(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, help="Server processes."),
) -> None:
    """Serve the intake HTTP API."""
    import uvicorn

    from leadline.bootstrap import prepared_settings

    require_free_port(host, port, "leadline intake --port ...")
    prepared_settings()  # fail fast on bad settings before forking servers
    uvicorn.run("intake.asgi:build", factory=True, **intake_server_options(host, port, workers))


def intake_server_options(host: str, port: int, workers: int) -> dict[str, Any]:
    """uvicorn settings of the intake (bench/ serves its bare ASGI baseline with these too)."""
    return {
        "host": host,
        "port": port,
        "workers": workers,
        "log_config": None,
        "access_log": False,
        # The app resolves X-Forwarded-For itself, from LEADLINE_TRUSTED_PROXIES only
        # (intake.middleware.ClientAddressMiddleware); uvicorn must not rewrite the peer first
        # (its own handling trusts FORWARDED_ALLOW_IPS and takes the leftmost untrusted hop).
        "proxy_headers": False,
        "forwarded_allow_ips": "",
        "server_header": False,
    }


def worker(
    threads: int = typer.Option(0, help="Worker threads (default: LEADLINE_WORKER_THREADS)."),
    queues: str = typer.Option("", help="Comma-separated queues (default: all)."),
) -> None:
    """Run Dramatiq worker threads until SIGINT or SIGTERM."""
    import dramatiq

    from workers.exporter import serve_worker_metrics

    context = open_runtime()
    context.db.start_cache_invalidations()
    metrics_port = context.settings.leadline_worker_metrics_port
    if metrics_port:
        try:
            serve_worker_metrics(context.settings.leadline_worker_metrics_host, metrics_port)
        except OSError as exc:
            typer.echo(f"worker metrics not served on port {metrics_port}: {exc}", err=True)
    broker = dramatiq.get_broker()
    gc.freeze()  # long-lived startup objects: keep them out of full collections (see intake)
    worker_threads = threads or context.settings.leadline_worker_threads
    selected = {q.strip() for q in queues.split(",") if q.strip()} or None
    runner = dramatiq.Worker(
        broker, queues=selected, worker_threads=worker_threads, worker_timeout=1000
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    runner.start()
    typer.echo(f"worker running with {worker_threads} threads", err=True)
    stop.wait()
    runner.stop(timeout=10_000)
    broker.close()


def sandbox(
    host: str = typer.Option("127.0.0.1", help="Interface (loopback only in development)."),
    port: int = typer.Option(8025, help="Port to listen on."),
) -> None:
    """The provider sandbox alone: speaks Twilio's and Telegram's APIs, shows GET /sent."""
    from leadline.sandbox import serve_forever

    require_free_port(host, port, "leadline sandbox --port ...")
    serve_forever(host, port)


def require_free_port(host: str, port: int, how_to_change: str) -> None:
    """One line and exit 1 for a busy port, instead of a log line from inside uvicorn."""
    from leadline.ports import busy_port_message, port_is_free

    if port and not port_is_free(port, host):
        fail(busy_port_message(port, how_to_change))
