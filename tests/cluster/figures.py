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
from pathlib import Path

import psycopg
import redis

from tests.chaos.processes import Child

TICKS = os.sysconf("SC_CLK_TCK")
SERVERS = ("postgres", "redis-server")
# Dramatiq's dispatch script (enqueue, fetch, ack, nack, requeue) and the rate limiter's.
SCRIPT_CALL = "evalsha"


def stat(pid: int) -> tuple[str, float, float]:
    """A process's name, its own CPU (user + system, every thread) and that of its children
    that ended and were waited for (a server's exited backends), in seconds."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "", 0.0, 0.0
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / TICKS
    children = (int(fields[13]) + int(fields[14])) / TICKS
    return name, own, children


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (all its threads); 0 once it is gone."""
    return stat(pid)[1]


def servers_cpu(pids: Sequence[int]) -> dict[str, float]:
    """CPU seconds of the db host's servers by process name (`db-postgres`: the postmaster,
    its live backends and the ones that ended; `db-redis-server`)."""
    totals: Counter[str] = Counter()
    for pid in pids:
        name, own, children = stat(pid)
        if name in SERVERS:
            totals[f"db-{name}"] += own + children
    return dict(totals)


@dataclass(frozen=True)
class Reading:
    at: float
    cpu: Mapping[str, float]  # role name (a-intake, ...) → CPU seconds so far
    transactions: int
    commands: Counter[str]
    processed_events: int


def read(
    roles: Sequence[Child], servers: Sequence[int], database_url: str, client: redis.Redis
) -> Reading:
    cpu = {
        child.name: cpu_seconds(child.process.pid)
        for child in roles
        if child.process is not None and child.alive()
    }
    cpu.update(servers_cpu(servers))
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


@dataclass(frozen=True)
class Idle:
    """The background rate of everything counted, from a window with no load: the consumers'
    polls, the cache listeners' liveness checks, the schedulers' lock attempts."""

    window: Window

    def cpu(self, role: str, seconds: float) -> float:
        return self.window.cpu(role) / self.window.seconds * seconds

    def transactions(self, seconds: float) -> float:
        return self.window.transactions / self.window.seconds * seconds

    def commands(self, seconds: float, name: str | None = None) -> float:
        """All commands (or those called `name`) the idle rate makes in `seconds`."""
        counted = self.window.commands
        calls = counted[name] if name is not None else sum(counted.values())
        return calls / self.window.seconds * seconds


def lines(name: str, window: Window, idle: Idle) -> list[str]:
    """The window's figures per accepted request, net of the idle rate (raw in brackets)."""
    accepted, seconds = window.accepted, window.seconds

    def cpu_ms(role: str) -> str:
        raw = 1000 * window.cpu(role)
        net = raw - 1000 * idle.cpu(role, seconds)
        return f"{per(net, accepted)} ({per(raw, accepted)})"

    transactions = window.transactions
    commands = sum(window.commands.values())
    scripts = window.commands[SCRIPT_CALL]
    return [
        f"  {name}: {seconds:.0f} s, {accepted} requests accepted "
        f"({per(accepted, round(seconds))}/s), {window.events} events processed",
        f"    CPU ms per accepted request, net of idle (raw): intake {cpu_ms('intake')}, "
        f"worker {cpu_ms('worker')}, scheduler {cpu_ms('scheduler')}",
        f"    CPU ms per accepted request on db, net of idle (raw): PostgreSQL "
        f"{cpu_ms('postgres')}, Redis {cpu_ms('redis-server')}",
        f"    CPU cores busy: intake {per(window.cpu('intake'), round(seconds))}, "
        f"worker {per(window.cpu('worker'), round(seconds))}, PostgreSQL "
        f"{per(window.cpu('postgres'), round(seconds))}, Redis "
        f"{per(window.cpu('redis-server'), round(seconds))}",
        f"    PostgreSQL transactions per accepted request, net of idle (raw): "
        f"{per(transactions - idle.transactions(seconds), accepted)} "
        f"({per(transactions, accepted)})",
        f"    Redis per accepted request, net of idle (raw): EVALSHA "
        f"{per(scripts - idle.commands(seconds, SCRIPT_CALL), accepted)} "
        f"({per(scripts, accepted)}), every command, those the scripts run included, "
        f"{per(commands - idle.commands(seconds), accepted)} ({per(commands, accepted)})",
    ]


def idle_lines(idle: Idle) -> list[str]:
    window = idle.window
    seconds = window.seconds
    return [
        f"  idle, both hosts up, before the load: {seconds:.0f} s; per second: "
        f"{per(window.transactions, round(seconds))} PostgreSQL transactions, "
        f"{per(sum(window.commands.values()), round(seconds))} Redis commands, CPU ms "
        f"intake {per(1000 * window.cpu('intake'), round(seconds))}, worker "
        f"{per(1000 * window.cpu('worker'), round(seconds))}, scheduler "
        f"{per(1000 * window.cpu('scheduler'), round(seconds))}, PostgreSQL "
        f"{per(1000 * window.cpu('postgres'), round(seconds))}, Redis "
        f"{per(1000 * window.cpu('redis-server'), round(seconds))}",
    ]
