"""The Leadline stack under test: its environment, the CLI, and its long-running roles.

Every child gets the run's own database and Redis, a random master key and provider secrets,
the sandbox as Twilio and Telegram, and short sweep and retry settings, so work stranded by a
fault is recovered within the run.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from leadline.ports import LOOPBACK, free_port
from tests.chaos.errors import ChaosError
from tests.chaos.processes import LEADLINE, STOP_GRACE_SECONDS, Child, leadline_child
from tests.support.services import random_master_key

CLI_TIMEOUT_SECONDS = 120.0
HEALTHY_WITHIN_SECONDS = 120.0
WORKERS = 2
# Settings the children inherit from nowhere but here (an engineer's shell may set them).
FOREIGN_PREFIXES = ("LEADLINE_", "TWILIO_", "TELEGRAM_", "STRIPE_", "META_")
# Webhook retries every few seconds, 24 times: a delivery to a receiver failing half its
# requests is lost only with odds of 2^-25, so a failed one means something else went wrong.
WEBHOOK_RETRIES = "1,1,1,2,2,2,3,3,3,4,4,4,5,5,5,5,5,5,5,5,5,5,5,5"
STACK_SETTINGS = {
    "LEADLINE_ENV": "development",
    "LEADLINE_LOG_LEVEL": "WARNING",
    "LEADLINE_REDIS_NAMESPACE": "leadline-chaos",
    "LEADLINE_ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
    "LEADLINE_WORKER_METRICS_PORT": "0",
    "LEADLINE_LIMIT_API": "1000000/minute",
    "LEADLINE_LIMIT_WEBHOOKS": "1000000/minute",
    "LEADLINE_SCHEDULER_POLL_SECONDS": "1",
    "LEADLINE_SWEEP_PENDING_AFTER_SECONDS": "5",
    "LEADLINE_OUTBOUND_QUEUED_STALE_SECONDS": "5",
    "LEADLINE_OUTBOUND_SENDING_STALE_SECONDS": "15",
    "LEADLINE_PROVIDER_TIMEOUT_SECONDS": "5",
    "LEADLINE_SMS_RETRY_BASE_SECONDS": "1",
    "LEADLINE_SMS_RETRY_MAX_SECONDS": "10",
    "LEADLINE_WEBHOOK_TIMEOUT_SECONDS": "5",
    "LEADLINE_WEBHOOK_RETRY_SCHEDULE": WEBHOOK_RETRIES,
    "LEADLINE_WEBHOOK_SWEEP_GRACE_SECONDS": "5",
}


def token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Secrets:
    """The master key and provider secrets of this run only."""

    master_keys: str = field(default_factory=lambda: random_master_key("chaos1"))
    twilio_account_sid: str = field(default_factory=lambda: "AC" + secrets.token_hex(16))
    twilio_auth_token: str = field(default_factory=token)
    stripe_webhook_secret: str = field(default_factory=lambda: token("whsec_"))
    telegram_bot_token: str = field(default_factory=lambda: "424242:" + token())
    telegram_secret_token: str = field(default_factory=token)
    meta_app_secret: str = field(default_factory=token)
    meta_verify_token: str = field(default_factory=token)

    def environment(self) -> dict[str, str]:
        return {
            "LEADLINE_MASTER_KEYS": self.master_keys,
            "TWILIO_ACCOUNT_SID": self.twilio_account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio_auth_token,
            "STRIPE_WEBHOOK_SECRET": self.stripe_webhook_secret,
            "TELEGRAM_BOT_TOKEN": self.telegram_bot_token,
            "TELEGRAM_SECRET_TOKEN": self.telegram_secret_token,
            "META_APP_SECRET": self.meta_app_secret,
            "META_VERIFY_TOKEN": self.meta_verify_token,
        }


@dataclass(frozen=True)
class Ports:
    intake: int = field(default_factory=free_port)
    sandbox: int = field(default_factory=free_port)

    @property
    def intake_url(self) -> str:
        return f"http://{LOOPBACK}:{self.intake}"

    @property
    def sandbox_url(self) -> str:
        return f"http://{LOOPBACK}:{self.sandbox}"


@dataclass(frozen=True)
class Layout:
    """Where the run keeps its state: everything under one temporary directory."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def spool(self) -> Path:
        return self.state / "spool.sqlite3"

    def create(self) -> None:
        for directory in (self.state, self.logs, self.root / "backups"):
            directory.mkdir(parents=True, exist_ok=True)


def stack_environment(
    base: Mapping[str, str],
    layout: Layout,
    database_url: str,
    redis_url: str,
    ports: Ports,
    run_secrets: Secrets,
) -> dict[str, str]:
    env = {key: value for key, value in base.items() if not key.startswith(FOREIGN_PREFIXES)}
    env.update(STACK_SETTINGS)
    env.update(run_secrets.environment())
    env.update(
        {
            "LEADLINE_DATABASE_URL": database_url,
            "LEADLINE_REDIS_URL": redis_url,
            "LEADLINE_STATE_DIR": str(layout.state),
            "LEADLINE_SPOOL_PATH": str(layout.spool),
            "LEADLINE_BACKUP_DIR": str(layout.root / "backups"),
            "LEADLINE_PUBLIC_URL": ports.intake_url,
            "TWILIO_API_BASE": ports.sandbox_url,
            "TELEGRAM_API_BASE": ports.sandbox_url,
        }
    )
    return env


def leadline_cli(env: dict[str, str], label: str, *args: str) -> Any:
    """`leadline ARGS --json`; the last line of its output. `label` names it in errors (the
    arguments may hold phone numbers)."""
    try:
        result = subprocess.run(
            [*LEADLINE, *args, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ChaosError(
            f"`leadline {label}` did not finish in {CLI_TIMEOUT_SECONDS:.0f} s"
        ) from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ChaosError(f"`leadline {label}` exited with {result.returncode}: {last[:300]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


@dataclass
class Stack:
    """sandbox, intake, two workers and the scheduler, as separate processes."""

    env: dict[str, str]
    ports: Ports
    logs: Path
    children: dict[str, Child] = field(default_factory=dict)

    def __post_init__(self) -> None:
        roles = {
            "sandbox": ["sandbox", "--port", str(self.ports.sandbox)],
            "intake": ["intake", "--port", str(self.ports.intake)],
            **{f"worker-{n}": ["worker"] for n in range(1, WORKERS + 1)},
            "scheduler": ["scheduler"],
        }
        self.children = {
            name: leadline_child(name, args, self.env, self.logs) for name, args in roles.items()
        }

    @property
    def workers(self) -> list[Child]:
        return [child for name, child in self.children.items() if name.startswith("worker-")]

    def start(self) -> None:
        for child in self.children.values():
            child.start()
        self.wait_healthy(f"{self.ports.intake_url}/healthz", "intake")
        self.wait_healthy(f"{self.ports.sandbox_url}/sent", "sandbox")

    def wait_healthy(self, url: str, name: str) -> None:
        deadline = time.monotonic() + HEALTHY_WITHIN_SECONDS
        while time.monotonic() < deadline:
            self.fail_if_exited()
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise ChaosError(f"{name} did not answer {url} within {HEALTHY_WITHIN_SECONDS:.0f} s")

    def fail_if_exited(self) -> None:
        for child in self.children.values():
            if not child.alive():
                tail = "\n".join(f"    {line}" for line in child.log_tail())
                raise ChaosError(f"{child.name} exited with code {child.exit_code()}:\n{tail}")

    def exited(self) -> dict[str, int | None]:
        """Roles that ended on their own (a kill by a fault is followed by a restart)."""
        return {name: c.exit_code() for name, c in self.children.items() if not c.alive()}

    def restart_worker(self, worker: Child) -> None:
        worker.kill()
        worker.start()

    def stop(self) -> None:
        """Every role at once (SIGTERM), then whatever is left after the grace (SIGKILL)."""
        for child in self.children.values():
            child.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in self.children.values():
            child.wait_or_kill(max(0.1, deadline - time.monotonic()))
