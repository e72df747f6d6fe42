"""Long-running roles: `migrate`, `intake`, `worker`."""
# The scheduler is in schedule.py; it serves its probes with `serve_probes` below.

from __future__ import annotations

import ctypes
import gc
import os
import signal
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, TypedDict

import typer

from leadline.commands.common import JsonOption, emit, fail, run_guarded
from tasks.context import open_runtime

if TYPE_CHECKING:
    from workers.exporter import Probes

WORKER_PORT_SETTING = "LEADLINE_WORKER_METRICS_PORT"
PR_SET_PDEATHSIG = 1


def migrate(as_json: bool = JsonOption) -> None:
    """Create or upgrade the schema, roles and row-level security policies."""
    from models.migrate import current_heads, upgrade

    def run() -> None:
        context = open_runtime()
        upgrade(context.db.owner_engine)
        heads = sorted(current_heads(context.db.owner_engine))
        emit({"heads": heads}, as_json, f"database at revision {', '.join(heads)}")

    run_guarded(run, as_json)


def default_processes() -> int:
    """One server or worker process per core: a process's threads share one GIL, so more
    threads in one process fight over it instead of using the other cores."""
    return max(1, os.cpu_count() or 1)


def intake(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(0, min=0, help="Server processes (default: one per core)."),
) -> None:
    """Serve the intake HTTP API."""
    import uvicorn

    from leadline.bootstrap import prepared_settings

    require_free_port(host, port, "leadline intake --port ...")
    prepared_settings()  # fail fast on bad settings before forking servers
    count = workers or default_processes()
    uvicorn.run("intake.asgi:build", factory=True, **intake_server_options(host, port, count))


class IntakeServerOptions(TypedDict):
    """Keyword arguments of uvicorn.run / uvicorn.Config."""

    host: str
    port: int
    workers: int
    log_config: None
    access_log: bool
    proxy_headers: bool
    forwarded_allow_ips: str
    server_header: bool


def intake_server_options(host: str, port: int, workers: int) -> IntakeServerOptions:
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
    processes: int = typer.Option(0, min=0, help="Worker processes (default: one per core)."),
    threads: int = typer.Option(
        0, min=0, help="Threads per process (default: LEADLINE_WORKER_THREADS)."
    ),
    queues: str = typer.Option("", help="Comma-separated queues (default: all)."),
) -> None:
    """Run Dramatiq worker processes and threads until SIGINT or SIGTERM; each process serves
    /metrics, /healthz and /readyz on LEADLINE_WORKER_METRICS_HOST:PORT (+ its index)."""
    count = processes or default_processes()
    if count > 1:
        supervise_workers(count, threads, queues)
    else:
        run_worker(threads, queues)


def supervise_workers(count: int, threads: int, queues: str) -> None:
    """`count` single-process workers as children; SIGINT/SIGTERM stops them all. Each serves
    its metrics on its own port (LEADLINE_WORKER_METRICS_PORT + its index) and dies with this
    process, so killing it (even SIGKILL) stops them all, as it stopped a one-process worker."""
    from leadline.settings import get_settings

    settings = get_settings()
    base_port = settings.leadline_worker_metrics_port
    for index in range(count if base_port else 0):
        # Checked here, before any child starts: a child's own check would be followed by
        # this supervisor's "a worker process exited" line, burying the one that says why.
        require_free_port(
            settings.leadline_worker_metrics_host, base_port + index, port_hint(WORKER_PORT_SETTING)
        )
    command = [sys.executable, "-m", "leadline", "worker", "--processes", "1"]
    command += ["--threads", str(threads)] if threads else []
    command += ["--queues", queues] if queues else []
    children = []
    for index in range(count):
        env = dict(os.environ)
        if base_port:
            env["LEADLINE_WORKER_METRICS_PORT"] = str(base_port + index)
        children.append(subprocess.Popen(command, env=env, preexec_fn=die_with_parent))  # noqa: S603
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        exited = [child.returncode for child in children if child.poll() is not None]
        if exited:
            typer.echo(f"a worker process exited with code {exited[0]}; stopping", err=True)
            break
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    codes = [child.wait() for child in children]
    if not stop.is_set():
        raise typer.Exit(next((code for code in codes if code), 1))


def die_with_parent() -> None:
    """In a child, before exec: the kernel sends it SIGKILL when its parent dies (Linux)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run_worker(threads: int, queues: str) -> None:
    """One worker process: Dramatiq threads until SIGINT or SIGTERM."""
    import dramatiq

    from workers.brokers import current_broker
    from workers.exporter import worker_probes
    from workers.runtime import WORKER_IDLE_POLL_MS, tune_worker_process

    context = open_runtime()
    context.db.start_cache_invalidations()
    settings, broker = context.settings, current_broker()
    probes = worker_probes(context.db, broker, settings.leadline_liveness_stale_seconds)
    host, port = settings.leadline_worker_metrics_host, settings.leadline_worker_metrics_port
    serve_probes(host, port, WORKER_PORT_SETTING, probes)
    gc.freeze()  # long-lived startup objects: keep them out of full collections (see intake)
    worker_threads = threads or context.settings.leadline_worker_threads
    selected = {q.strip() for q in queues.split(",") if q.strip()} or None
    runner = dramatiq.Worker(
        broker, queues=selected, worker_threads=worker_threads, worker_timeout=WORKER_IDLE_POLL_MS
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    tune_worker_process()
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


def port_hint(setting: str) -> str:
    return f"{setting}=..., or 0 to serve nothing"


def serve_probes(host: str, port: int, setting: str, probes: Probes) -> None:
    """/metrics, /healthz and /readyz on host:port (none for port 0); one line and exit 1 when
    the port is busy or the address cannot be served."""
    from workers.exporter import serve_metrics_and_probes

    if not port:
        return
    require_free_port(host, port, port_hint(setting))
    try:
        serve_metrics_and_probes(host, port, probes)
    except OSError as exc:
        fail(
            f"cannot listen on {host}:{port} ({exc.strerror or type(exc).__name__}; set {setting})"
        )


def require_free_port(host: str, port: int, how_to_change: str) -> None:
    """One line and exit 1 for a busy port, instead of a log line from inside uvicorn."""
    from leadline.ports import busy_port_message, port_is_free

    if port and not port_is_free(port, host):
        fail(busy_port_message(port, how_to_change))
