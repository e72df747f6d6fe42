"""`leadline worker --processes N`: N single-process workers under one supervisor that stop
with it, on SIGTERM (cleanly, exit 0) and on SIGKILL (the kernel kills them), as a
one-process worker would; both roles default to one process per core."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from leadline.commands.serve import default_processes
from leadline.settings import Settings
from tests.helpers import wait_for
from tests.support.processes import LEADLINE, child_env

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.e2e


def children_of(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[1] == str(pid) and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return False
    return fields[0] != "Z"


def start_workers(settings: Settings) -> subprocess.Popen[bytes]:
    env = child_env(settings, LEADLINE_WORKER_METRICS_PORT="0")
    return subprocess.Popen(
        [LEADLINE, "worker", "--processes", "2", "--threads", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sigterm_stops_every_worker_process(settings: Settings, context: TaskContext) -> None:
    supervisor = start_workers(settings)
    children = wait_for(
        lambda: len(children_of(supervisor.pid)) == 2 and children_of(supervisor.pid), timeout=60
    )
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=60) == 0
    assert not any(alive(child) for child in children)


def test_killing_the_supervisor_kills_its_workers(settings: Settings, context: TaskContext) -> None:
    supervisor = start_workers(settings)
    children = wait_for(
        lambda: len(children_of(supervisor.pid)) == 2 and children_of(supervisor.pid), timeout=60
    )
    supervisor.kill()
    supervisor.wait(timeout=10)
    wait_for(lambda: not any(alive(child) for child in children), timeout=30)


def test_one_process_per_core_by_default() -> None:
    assert default_processes() == max(1, os.cpu_count() or 1)
