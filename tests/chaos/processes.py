"""Child processes, each in its own process group, so a kill reaches everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

STOP_GRACE_SECONDS = 15.0
LEADLINE = (sys.executable, "-m", "leadline")


@dataclass
class Child:
    """One role of the stack (`leadline intake`, `worker`, ...) with its log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    kills: int = field(default=0)

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def kill(self) -> None:
        """SIGKILL to the whole group: no shutdown, no acks, nothing flushed."""
        if self.alive():
            assert self.process is not None
            signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.kills += 1

    def terminate(self) -> None:
        if self.alive():
            assert self.process is not None
            signal_group(self.process.pid, signal.SIGTERM)

    def wait_or_kill(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """After terminate(): wait for a clean exit, then SIGKILL the group."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 20) -> list[str]:
        """The last lines of its log (JSON lines, redacted by the application's logging)."""
        try:
            return self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return []


def signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)


def leadline_child(name: str, args: list[str], env: dict[str, str], logs: Path) -> Child:
    return Child(name, [*LEADLINE, *args], env, logs / f"{name}.log")
