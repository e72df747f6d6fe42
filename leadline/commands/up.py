"""`leadline up`: the whole development stack in one process group, Ctrl-C stops it all."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import typer

from leadline.bootstrap import child_environment, stop_embedded
from leadline.commands.common import fail, open_runtime, run_guarded
from leadline.devsecrets import development_provider_secrets
from leadline.settings import Settings


def up(
    demo: bool = typer.Option(False, "--demo", help="Run the demo against the stack, then exit."),
    port: int = typer.Option(8000, help="Intake port."),
    sandbox_port: int = typer.Option(8025, help="Provider sandbox port."),
) -> None:
    """Start embedded services if no URLs are set, migrate, then intake, worker and sandbox."""
    from models.migrate import upgrade

    context = open_runtime()
    settings: Settings = context.settings
    if settings.is_production:
        fail("`leadline up` is a development stack; run the roles separately in production")
    upgrade(context.db.owner_engine)
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = child_environment(
        settings,
        {
            "TWILIO_API_BASE": settings.twilio_api_base or sandbox_url,
            "TELEGRAM_API_BASE": sandbox_url,
            **run_guarded(lambda: development_provider_secrets(settings), False).environment(),
            "LEADLINE_ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
        },
    )
    stop = install_stop_handlers()
    children = start_children(env, port, sandbox_port)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/healthz", children, stop)
        if stop.is_set():
            return
        if demo:
            from leadline.commands.demo import run_demo

            run_demo(context, f"http://127.0.0.1:{port}", sandbox_url)
            return
        print_welcome(f"http://127.0.0.1:{port}", sandbox_url)
        wait_for_stop(children, stop)
    finally:
        stop_children(children)
        stop_embedded()


def start_children(env: dict[str, str], port: int, sandbox_port: int) -> dict[str, Any]:
    launcher = [sys.executable, "-m", "leadline"]
    commands = {
        "sandbox": [*launcher, "sandbox", "--port", str(sandbox_port)],
        "intake": [*launcher, "intake", "--port", str(port)],
        "worker": [*launcher, "worker"],
    }
    if has_command("scheduler"):
        commands["scheduler"] = [*launcher, "scheduler"]
    return {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}  # noqa: S603


def has_command(name: str) -> bool:
    from leadline.cli import app

    return any(
        (command.name or getattr(command.callback, "__name__", "")) == name
        for command in app.registered_commands
    )


def install_stop_handlers() -> threading.Event:
    """Ctrl-C (SIGINT to the whole group) or SIGTERM asks for a clean stop, at any moment."""
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def wait_until_healthy(
    url: str, children: dict[str, Any], stop: threading.Event, timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        exited = [name for name, proc in children.items() if proc.poll() is not None]
        if exited:
            fail(f"{', '.join(exited)} exited during start-up")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        stop.wait(0.2)
    if not stop.is_set():
        fail("intake did not become healthy in time")


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


def wait_for_stop(children: dict[str, Any], stop: threading.Event) -> None:
    while not stop.wait(0.3):
        exited = [name for name, proc in children.items() if proc.poll() is not None]
        if exited:
            typer.echo(f"{', '.join(exited)} exited; stopping the stack", err=True)
            raise typer.Exit(1)
    typer.echo("stopping", err=True)


def stop_children(children: dict[str, Any], grace: float = 15.0) -> None:
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
