"""Counters read at the edges of a load window, for the capacity figures the run prints
(docs/scaling.md cites them): CPU seconds of each role's process (/proc/<pid>/stat, user +
system, every thread), PostgreSQL transactions (pg_stat_database) and Redis commands by
name (INFO commandstats), each taken as a difference between two readings.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psycopg
import redis

from tests.chaos.processes import Child

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (all its threads); 0 once it is gone."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass(frozen=True)
class Reading:
    at: float
    cpu: Mapping[str, float]  # role name (a-intake, ...) → CPU seconds so far
    transactions: int
    commands: Counter[str]
    processed_events: int


def read(roles: Sequence[Child], database_url: str, client: redis.Redis) -> Reading:
    cpu = {
        child.name: cpu_seconds(child.process.pid)
        for child in roles
        if child.process is not None and child.alive()
    }
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
        done = conn.execute(
            "SELECT count(*) FROM inbound_events WHERE processed_at IS NOT NULL"
        ).fetchone()
    stats = client.info("commandstats")
    commands = Counter(
        {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    )
    return Reading(
        time.time(), cpu, int(row[0]) if row else 0, commands, int(done[0]) if done else 0
    )


@dataclass(frozen=True)
class Window:
    """What happened between two readings, with the requests accepted in it."""

    first: Reading
    last: Reading
    accepted: int

    @property
    def seconds(self) -> float:
        return self.last.at - self.first.at

    def cpu(self, role: str) -> float:
        """CPU seconds of roles whose name ends with `role` (every host's), both readings."""
        return sum(
            self.last.cpu[name] - self.first.cpu.get(name, 0.0)
            for name in self.last.cpu
            if name.endswith(role)
        )

    @property
    def events(self) -> int:
        return self.last.processed_events - self.first.processed_events

    @property
    def commands(self) -> Counter[str]:
        return self.last.commands - self.first.commands

    @property
    def transactions(self) -> int:
        return self.last.transactions - self.first.transactions


def per(total: float, count: int) -> str:
    return f"{total / count:.2f}" if count else "-"


def lines(name: str, window: Window) -> list[str]:
    accepted, events = window.accepted, window.events
    top = ", ".join(
        f"{command} {per(calls, accepted)}" for command, calls in window.commands.most_common(5)
    )
    return [
        f"  {name}: {window.seconds:.0f} s, {accepted} requests accepted "
        f"({per(accepted, round(window.seconds))}/s), {events} events processed",
        f"    CPU ms per accepted request: intake {per(1000 * window.cpu('intake'), accepted)}, "
        f"worker {per(1000 * window.cpu('worker'), accepted)} (per processed event "
        f"{per(1000 * window.cpu('worker'), events)}), scheduler "
        f"{per(1000 * window.cpu('scheduler'), accepted)}",
        f"    share of one core: intake {per(window.cpu('intake'), round(window.seconds))}, "
        f"worker {per(window.cpu('worker'), round(window.seconds))}",
        f"    per accepted request: PostgreSQL transactions "
        f"{per(window.transactions, accepted)}, Redis commands "
        f"{per(sum(window.commands.values()), accepted)} ({top})",
    ]
