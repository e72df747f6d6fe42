"""`leadline up`: the whole development stack in one process group, Ctrl-C stops it all."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import typer

from leadline.bootstrap import child_environment, stop_embedded
from leadline.commands.common import fail, run_guarded
from leadline.commands.serve import default_processes
from leadline.devsecrets import development_provider_secrets
from leadline.ports import LOOPBACK, busy_port_message, free_port, port_is_free
from leadline.settings import Settings, get_settings
from leadline.stackfile import remove_stack_file, write_stack_file
from tasks.context import open_runtime

DEFAULT_PORT = 8000
DEFAULT_SANDBOX_PORT = 8025
# The provider sandbox accepts any Meta app; a fixed id turns social channels on in development.
DEV_META_APP_ID = "1234567890123456"
HOW_TO_CHANGE_PORT = "make run PORT=... or leadline up --port ..."
HOW_TO_CHANGE_SANDBOX_PORT = "make run SANDBOX_PORT=... or leadline up --sandbox-port ..."


def up(
    demo: bool = typer.Option(False, "--demo", help="Run the demo against the stack, then exit."),
    port: int | None = typer.Option(
        None,
        min=0,
        max=65535,
        help="Intake port (default 8000, or a free one with --demo; 0: a free one).",
    ),
    sandbox_port: int | None = typer.Option(
        None,
        min=0,
        max=65535,
        help="Provider sandbox port (default 8025, or a free one with --demo; 0: a free one).",
    ),
) -> None:
    """Start embedded services if no URLs are set, migrate, then intake, worker and sandbox."""
    port, sandbox_port = choose_ports(port, sandbox_port, demo)
    settings = get_settings()
    if settings.is_production:
        fail("`leadline up` is a development stack; run the roles separately in production")

    def run() -> None:
        with ExitStack() as cleanup:
            configured = settings
            if demo:
                from leadline.commands.demo import isolated_settings

                configured = cleanup.enter_context(isolated_settings(settings))
            cleanup.callback(stop_embedded)
            run_stack(cleanup, configured, demo, port, sandbox_port)

    run_guarded(run, as_json=False)


def run_stack(
    cleanup: ExitStack, configured: Settings, demo: bool, port: int, sandbox_port: int
) -> None:
    from models.migrate import upgrade

    require_probe_ports(configured)
    context = open_runtime(configured)
    cleanup.callback(context.db.dispose)
    settings: Settings = context.settings
    upgrade(context.db.owner_engine)
    intake_url = f"http://{LOOPBACK}:{port}"
    sandbox_url = f"http://{LOOPBACK}:{sandbox_port}"
    env = child_environment(
        settings,
        {
            "TWILIO_API_BASE": settings.twilio_api_base or sandbox_url,
            "TELEGRAM_API_BASE": sandbox_url,
            "META_OAUTH_BASE": sandbox_url,
            "META_GRAPH_BASE": sandbox_url,
            "META_APP_ID": settings.meta_app_id or DEV_META_APP_ID,
            # Email stays off until POSTMARK_SERVER_TOKEN is set; then it reaches the sandbox.
            "POSTMARK_API_BASE": (
                settings.postmark_api_base
                if "postmark_api_base" in settings.model_fields_set
                else sandbox_url
            ),
            **development_provider_secrets(settings).environment(),
            "LEADLINE_ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
        },
    )
    env.update(public_url_environment(configured, intake_url))
    stop = install_stop_handlers()
    adopt_orphans()
    children = start_children(env, port, sandbox_port)
    cleanup.callback(stop_children, children)
    wait_until_healthy(f"{intake_url}/healthz", children, stop)
    if stop.is_set():
        return
    if demo:
        from leadline.commands.demo import run_demo

        run_demo(context, intake_url, sandbox_url)
        return
    state_dir = Path(settings.leadline_state_dir)
    write_stack_file(state_dir, intake_url, sandbox_url)
    cleanup.callback(remove_stack_file, state_dir)
    print_welcome(intake_url, sandbox_url)
    wait_for_stop(children, stop)


def choose_ports(port: int | None, sandbox_port: int | None, demo: bool) -> tuple[int, int]:
    """The ports to serve on, checked before anything starts: a busy one ends `up` here.

    Without a port the stack takes 8000 and 8025, the demo free ones (it runs next to a stack
    on the defaults); 0 also picks a free port.
    """
    wanted_intake = (0 if demo else DEFAULT_PORT) if port is None else port
    wanted_sandbox = (0 if demo else DEFAULT_SANDBOX_PORT) if sandbox_port is None else sandbox_port
    if wanted_intake and wanted_intake == wanted_sandbox:
        fail(
            f"the intake and the provider sandbox cannot share port {wanted_intake} "
            f"(choose another with {HOW_TO_CHANGE_SANDBOX_PORT})"
        )
    intake = claim_port(wanted_intake, HOW_TO_CHANGE_PORT)
    sandbox = claim_port(wanted_sandbox, HOW_TO_CHANGE_SANDBOX_PORT)
    while sandbox == intake:  # only when a free port was picked for one of them
        if wanted_sandbox == 0:
            sandbox = free_port()
        else:
            intake = free_port()
    return intake, sandbox


def require_probe_ports(settings: Settings) -> None:
    """The workers' and the scheduler's metrics ports, checked before anything starts too (the
    worker runs one process per core, each on the next port: leadline.commands.serve)."""
    base = settings.leadline_worker_metrics_port
    worker_ports = [base + index for index in range(default_processes())] if base else []
    probe_ports = [
        ("LEADLINE_WORKER_METRICS_PORT", settings.leadline_worker_metrics_host, port)
        for port in worker_ports
    ]
    probe_ports.append(
        (
            "LEADLINE_SCHEDULER_METRICS_PORT",
            settings.leadline_scheduler_metrics_host,
            settings.leadline_scheduler_metrics_port,
        )
    )
    for setting, host, port in probe_ports:
        if port and not port_is_free(port, host):
            fail(busy_port_message(port, f"{setting}=..., or 0 to serve nothing"))


def claim_port(port: int, how_to_change: str) -> int:
    if port == 0:
        return free_port()
    if not port_is_free(port):
        fail(busy_port_message(port, how_to_change))
    return port


# The stack's child processes by role: sandbox, intake, worker, scheduler.
Children = dict[str, subprocess.Popen[bytes]]


def public_url_environment(settings: Settings, intake_url: str) -> dict[str, str]:
    """In development the public URL (Twilio signatures, callback URLs) follows the intake
    port, unless LEADLINE_PUBLIC_URL was set: then the children inherit it unchanged."""
    if "leadline_public_url" in settings.model_fields_set:
        return {}
    return {"LEADLINE_PUBLIC_URL": intake_url}


def start_children(env: dict[str, str], port: int, sandbox_port: int) -> Children:
    launcher = [sys.executable, "-m", "leadline"]
    commands = {
        "sandbox": [*launcher, "sandbox", "--port", str(sandbox_port)],
        "intake": [*launcher, "intake", "--port", str(port)],
        "worker": [*launcher, "worker"],
        "scheduler": [*launcher, "scheduler"],
    }
    return {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}  # noqa: S603


def install_stop_handlers() -> threading.Event:
    """Ctrl-C (SIGINT to the whole group) or SIGTERM asks for a clean stop, at any moment."""
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def wait_until_healthy(
    url: str, children: Children, stop: threading.Event, timeout: float = 180.0
) -> None:
    """Until our intake answers /healthz. A child that exits first ends `up` with one line.

    The ports were free just before the children started, and the intake child must still be
    alive when the answer comes, so the answer is not from another program on that port.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        fail_if_a_child_exited(children)
        if answers(url) and children["intake"].poll() is None:
            return
        stop.wait(0.2)
    if not stop.is_set():
        fail(f"intake did not answer {url} within {timeout:.0f} s (its log lines are above)")


def fail_if_a_child_exited(children: Children) -> None:
    for name, proc in children.items():
        code = proc.poll()
        if code is not None:
            fail(f"{name} exited during start-up with code {code} (its log lines are above)")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def print_welcome(intake_url: str, sandbox_url: str) -> None:
    from leadline.commands.quickstart import render_quick_start

    typer.echo(
        f"""
Leadline is running.
  intake   {intake_url}   (GET /healthz)
  sandbox  {sandbox_url}/sent   (messages that "left" for Twilio/Telegram)
  ops      {intake_url}/ops   (set LEADLINE_OPS_TOKEN to sign in), /metrics, /readyz

{render_quick_start(intake_url, sandbox_url)}
Ctrl-C stops everything.
""",
        err=True,
    )


def wait_for_stop(children: Children, stop: threading.Event) -> None:
    while not stop.wait(0.3):
        exited = [name for name, proc in children.items() if proc.poll() is not None]
        if exited:
            typer.echo(f"{', '.join(exited)} exited; stopping the stack", err=True)
            raise typer.Exit(1)
    typer.echo("stopping", err=True)


def stop_children(children: Children, grace: float = 15.0) -> None:
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    reap_orphans(time.monotonic() + ORPHAN_GRACE_SECONDS)


PR_SET_CHILD_SUBREAPER = 36
ORPHAN_GRACE_SECONDS = 10.0  # adopted processes are already stopping (or killed with a parent)


def adopt_orphans() -> None:
    """Linux: processes our children leave behind (the intake's server processes, helpers of
    multiprocessing) become our children when their parent exits, so we can reap them instead
    of leaving zombies in the group after a stop."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)


def reap_orphans(deadline: float) -> None:
    """Wait (until `deadline`) for every adopted process to exit, reaping each one."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
