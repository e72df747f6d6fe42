"""Waiting, bounded, until the stack holds no more work (the sweeps nudged along)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tasks.context import TaskContext
from tests.chaos.collect import Backlog, backlog
from tests.chaos.errors import ChaosError
from tests.chaos.stack import leadline_cli

POLL_SECONDS = 2.0
SWEEP_EVERY_SECONDS = 30.0
REPORT_EVERY_SECONDS = 20.0
SWEEPS = ("sweep_inbox", "sweep_webhooks")


def run_sweeps(env: dict[str, str], say: Callable[[str], None]) -> None:
    """What the scheduler does every minute, now (a worker runs them)."""
    try:
        leadline_cli(env, "schedule run", "schedule", "run", *SWEEPS, "--force")
    except ChaosError as exc:
        say(f"  sweeps not sent: {exc}")


def wait_for_quiescence(
    context: TaskContext,
    env: dict[str, str],
    spool: Path,
    timeout: float,
    say: Callable[[str], None],
) -> Backlog:
    """The last backlog seen: settled, or what was left when `timeout` ran out."""
    start = time.monotonic()
    next_sweep, next_report = start, start + REPORT_EVERY_SECONDS
    while True:
        current = backlog(context, spool)
        now = time.monotonic()
        if current.settled or now - start >= timeout:
            return current
        if now >= next_report:
            say(f"  +{now - start:5.0f}s  waiting: {current.describe()}")
            next_report = now + REPORT_EVERY_SECONDS
        if now >= next_sweep:
            run_sweeps(env, say)
            next_sweep = time.monotonic() + SWEEP_EVERY_SECONDS
        time.sleep(POLL_SECONDS)
