"""The loss of host a during the load, in a thread of its own: SIGKILL to every process in
a's namespace, how long b's scheduler takes to lead, what a had taken (messages its brokers
fetched and never acknowledged, rows its worker had claimed), then a backup run from b.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
import redis

from tests.chaos.processes import LEADLINE
from tests.cluster import figures
from tests.cluster.cluster import LEADER_WITHIN_SECONDS, Cluster
from tests.cluster.errors import ClusterError
from tests.cluster.stack import held_messages, held_rows

STRANDED_AFTER_SECONDS = 8.0  # after the kill: b's own claims of that moment are done by then
BACKUP_AFTER_SECONDS = 20.0  # after the kill
BACKUP_TIMEOUT_SECONDS = 120.0
HOLDING_WITHIN_SECONDS = 15.0
# Rows a worker claims before its provider call or request, by table.
CLAIMED_STATES = {"webhook_deliveries": "delivering", "outbound_messages": "sending"}


@dataclass
class Failover:
    """The loss of host a during the load, in a thread of its own, and what it stranded."""

    cluster: Cluster
    kill_at: float
    a_brokers: set[str]
    say: Callable[[str], None]
    killed_at: float | None = None
    killed: list[int] = field(default_factory=list)
    left_on_a: list[int] = field(default_factory=list)
    before_kill: figures.Reading | None = None
    leader_before: str | None = None
    leader_after: float | None = None
    held: dict[str, str] = field(default_factory=dict)  # message id → queue
    held_actors: Counter[str] = field(default_factory=Counter)
    held_rows: dict[str, list[str]] = field(default_factory=dict)  # table → row ids
    claimed: dict[str, list[str]] = field(default_factory=dict)  # table → row ids
    backup: str | None = None
    error: str | None = None

    def report(self, line: str) -> None:
        self.say(line)

    def run(self, start: float, stop: threading.Event) -> None:
        try:
            if stopped_before(stop, start + self.kill_at):
                return
            # Read first: between a message seen held and the SIGKILL, nothing else runs.
            self.leader_before = self.cluster.leader()
            self.before_kill = self.cluster.reading()
            on_a = self.cluster.network.host("a").pids()
            self.wait_until_a_holds_work(stop)
            killed_at = self.kill(start, on_a)
            self.follow_leadership(start)
            if stopped_before(stop, killed_at + STRANDED_AFTER_SECONDS):
                return
            self.find_stranded()
            if stopped_before(stop, killed_at + BACKUP_AFTER_SECONDS):
                return
            self.run_backup(start)
        except (ClusterError, psycopg.Error, redis.RedisError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.report(f"  failover stopped: {self.error}")

    def wait_until_a_holds_work(self, stop: threading.Event) -> None:
        """The kill comes when a's worker holds messages it has not acknowledged, so there is
        stranded work to see finished (waiting at most HOLDING_WITHIN_SECONDS: at a few
        requests a second its queues are often empty)."""
        deadline = time.time() + HOLDING_WITHIN_SECONDS
        while time.time() < deadline and not stop.is_set():
            if held_messages(self.cluster.broker, self.a_brokers):
                return
            time.sleep(0.05)

    def kill(self, start: float, on_a: list[int]) -> float:
        # The kill's moment is after the signals: a row a claimed in the last milliseconds
        # before them still counts as claimed before the kill.
        self.killed, self.killed_at = self.cluster.hosts["a"].kill_everything(on_a)
        self.left_on_a = self.cluster.network.host("a").pids()
        self.report(
            f"  +{self.killed_at - start:6.1f}s  SIGKILL to every process on host a "
            f"({len(self.killed)} processes; {len(self.left_on_a)} left)"
        )
        return self.killed_at

    def follow_leadership(self, start: float) -> None:
        assert self.killed_at is not None
        deadline = self.killed_at + LEADER_WITHIN_SECONDS
        while time.time() < deadline:
            if self.cluster.leader() == "b":
                self.leader_after = time.time() - self.killed_at
                self.report(
                    f"  +{time.time() - start:6.1f}s  b's scheduler leads, "
                    f"{self.leader_after:.1f} s after the kill"
                )
                return
            time.sleep(0.1)
        self.report(f"  leadership did not reach b within {LEADER_WITHIN_SECONDS:.0f} s")

    def find_stranded(self) -> None:
        """Messages a's brokers took and never acknowledged, and rows a's worker had claimed
        (still claimed now, claimed before the kill)."""
        broker = self.cluster.broker
        self.held = held_messages(broker, self.a_brokers)
        self.held_actors, self.held_rows = held_rows(broker, self.held)
        with psycopg.connect(self.cluster.database_url, autocommit=True) as conn:
            self.claimed = {
                table: [
                    str(row[0])
                    for row in conn.execute(
                        f"SELECT id FROM {table} "
                        "WHERE state = %s AND claimed_at < to_timestamp(%s)",
                        (state, self.killed_at),
                    )
                ]
                for table, state in CLAIMED_STATES.items()
            }
        actors = ", ".join(f"{n} {a}" for a, n in sorted(self.held_actors.items()))
        claims = ", ".join(f"{len(ids)} {table}" for table, ids in self.claimed.items())
        self.report(
            f"  stranded by a: {len(self.held)} unacknowledged messages ({actors or 'none'}); "
            f"rows it had claimed: {claims}"
        )

    def run_backup(self, start: float) -> None:
        """`leadline schedule run create_backups` on host b: b's worker takes the job."""
        host = self.cluster.hosts["b"]
        command = [*LEADLINE, "schedule", "run", "create_backups", "--force", "--json"]
        result = subprocess.run(
            host.host.command(command),
            env=host.env,
            capture_output=True,
            text=True,
            timeout=BACKUP_TIMEOUT_SECONDS,
            check=False,
        )
        self.backup = "sent" if result.returncode == 0 else f"exit {result.returncode}"
        self.report(
            f"  +{time.time() - start:6.1f}s  create_backups sent from host b: {self.backup}"
        )


def stopped_before(stop: threading.Event, moment: float) -> bool:
    """Waits until `moment` (Unix seconds); True if the run was stopped meanwhile."""
    return stop.wait(max(0.0, moment - time.time()))
