"""`leadline worker` and `leadline scheduler` serve their probes on their metrics port, and a
busy port ends them with one line and exit code 1, as a busy intake port does."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from leadline.ports import free_port
from leadline.settings import Settings
from models.db import sqlalchemy_url
from scheduler.leader import AdvisoryLeader
from tests.helpers import wait_for
from tests.support.processes import LEADLINE, child_env

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.e2e
ROLES = {
    "worker": "LEADLINE_WORKER_METRICS_PORT",
    "scheduler": "LEADLINE_SCHEDULER_METRICS_PORT",
}


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("role", sorted(ROLES))
def test_a_busy_metrics_port_is_one_line_and_exit_1(
    settings: Settings, context: TaskContext, busy_port: int, role: str
) -> None:
    setting = ROLES[role]
    result = subprocess.run(
        [LEADLINE, role],
        env=child_env(settings, **{setting: str(busy_port)}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: port {busy_port} is in use "
        f"(choose another with {setting}=..., or 0 to serve nothing)"
    )
    assert "Traceback" not in result.stderr


@pytest.fixture
def free_then_busy() -> Iterator[tuple[int, int]]:
    """Two consecutive ports: the first free (checked just now), the second listening."""
    for _ in range(50):
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            base = int(free.getsockname()[1])
        with socket.socket() as busy:
            try:
                busy.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
            busy.listen()
            yield base, base + 1
            return
    raise AssertionError("no two consecutive ports to test with")


def test_a_busy_port_of_a_later_worker_process_is_named_before_any_starts(
    settings: Settings, context: TaskContext, free_then_busy: tuple[int, int]
) -> None:
    base, busy_port = free_then_busy  # the second process's port is the busy one
    result = subprocess.run(
        [LEADLINE, "worker", "--processes", "2"],
        env=child_env(settings, LEADLINE_WORKER_METRICS_PORT=str(base)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: port {busy_port} is in use "
        "(choose another with LEADLINE_WORKER_METRICS_PORT=..., or 0 to serve nothing)"
    ]


def probe(port: int, path: str) -> int | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code
    except httpx.HTTPError:
        return None


@pytest.mark.parametrize("role", sorted(ROLES))
def test_the_role_serves_healthz_readyz_and_metrics(
    settings: Settings, context: TaskContext, role: str, tmp_path: Path
) -> None:
    port = free_port()
    # The scheduler under test only follows: the lock is held here, so it fires no job into
    # the shared test database while its probes are read.
    leader = AdvisoryLeader(sqlalchemy_url(settings.leadline_database_url))
    assert leader.try_lead()
    log = (tmp_path / f"{role}.log").open("w")
    process = subprocess.Popen(
        [LEADLINE, role],
        env=child_env(settings, **{ROLES[role]: str(port)}),
        stdout=log,
        stderr=log,
    )
    try:
        wait_for(lambda: probe(port, "/healthz") == 200 or process.poll() is not None, 60)
        assert process.poll() is None, (tmp_path / f"{role}.log").read_text()[-2000:]
        assert probe(port, "/readyz") == 200
        assert probe(port, "/metrics") == 200
        assert probe(port, "/elsewhere") == 404
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
        leader.dispose()
