"""What runs on each host of the cluster run.

- db: PostgreSQL and Redis (tests/chaos/services.py, bound to the host's address) and an
  S3-compatible store (moto's server, as the backup tests use), the shared backup store;
- a, b: `leadline intake`, `leadline worker` and `leadline scheduler`, each run with
  `ip netns exec`; the scheduler on a is started first, so it leads and b's waits;
- ext: the world outside the cluster, the provider sandbox (Twilio, Telegram) and the
  customers' webhook receiver.

Every role's settings come from tests/chaos/stack.py (short sweeps and retries), with URLs
pointing at the hosts above and nothing inherited from the shell but the basics.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import Counter
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import redis

from tests.chaos.processes import LEADLINE, Child
from tests.chaos.receiver import WebhookReceiver
from tests.chaos.services import OwnPostgres, OwnRedis
from tests.chaos.stack import Layout, Ports, Secrets, stack_environment
from tests.cluster.errors import ClusterError
from tests.cluster.network import Host, Network, inside

APP_HOSTS = ("a", "b")
HOST_NAMES = ("db", *APP_HOSTS, "ext")
INTAKE_PORT, SANDBOX_PORT, S3_PORT = 8000, 8025, 9000
BUCKET = "leadline-cluster"
BACKUP_URL = f"s3://{BUCKET}/backups"
REDIS_NAMESPACE = "leadline-cluster"
READY_WITHIN_SECONDS = 120.0
# Environment names the roles never inherit from the shell: proxies would send traffic
# elsewhere, AWS_* would pick other credentials or endpoints.
UNINHERITED = ("AWS_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
SCHEDULER_LOCK = "leadline:scheduler"
AWS = {
    "AWS_ACCESS_KEY_ID": "AKIACLUSTERRUN000000",
    "AWS_SECRET_ACCESS_KEY": "cluster-run-secret-for-moto-only",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def url(host: Host, port: int) -> str:
    return f"http://{host.address}:{port}"


def wait_for(check: str, probe: httpx.URL | str, children: list[Child]) -> None:
    """Until GET `probe` answers below 500; fails early when a child has exited."""
    deadline = time.monotonic() + READY_WITHIN_SECONDS
    while time.monotonic() < deadline:
        for child in children:
            if not child.alive():
                tail = "\n".join(f"    {line}" for line in child.log_tail())
                raise ClusterError(f"{child.name} exited with code {child.exit_code()}:\n{tail}")
        try:
            if httpx.get(probe, timeout=2, trust_env=False).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise ClusterError(f"{check} did not answer {probe} within {READY_WITHIN_SECONDS:.0f} s")


@dataclass
class Shared:
    """The db and ext hosts' servers."""

    postgres: OwnPostgres
    redis: OwnRedis
    store: Child
    sandbox: Child
    receiver: WebhookReceiver

    @property
    def children(self) -> list[Child]:
        return [self.store, self.sandbox]


def start_shared(network: Network, root: Path, seed: int, cleanup: ExitStack) -> Shared:
    """PostgreSQL, Redis and the object store on db; the sandbox and the receiver on ext.
    Each is stopped by `cleanup`, registered as soon as it runs."""
    db, ext = network.host("db"), network.host("ext")
    logs = root / "logs"
    (root / "db").mkdir(parents=True, exist_ok=True)
    postgres = inside(db.namespace, lambda: OwnPostgres.create(root / "db", db.address))
    cleanup.callback(postgres.shutdown)
    assert network.subnet is not None
    postgres.trust(str(network.subnet))
    own_redis = OwnRedis(root / "db" / "redis", host=db.address)
    cleanup.callback(own_redis.shutdown)
    inside(db.namespace, own_redis.start)
    moto = Path(sys.executable).parent / "moto_server"
    store = Child(
        "db-s3",
        db.command([str(moto), "-H", db.address, "-p", str(S3_PORT)]),
        {**base_environment(), **AWS},
        logs / "db-s3.log",
    )
    sandbox = Child(
        "ext-sandbox",
        ext.command([*LEADLINE, "sandbox", "--host", ext.address, "--port", str(SANDBOX_PORT)]),
        base_environment(),
        logs / "ext-sandbox.log",
    )
    for child in (store, sandbox):
        cleanup.callback(stop_child, child)
        child.start()
    receiver = inside(ext.namespace, lambda: WebhookReceiver(seed, host=ext.address))
    receiver.start()
    cleanup.callback(receiver.stop)
    shared = Shared(postgres, own_redis, store, sandbox, receiver)
    wait_for("the object store", url(db, S3_PORT), shared.children)
    wait_for("the sandbox", f"{url(ext, SANDBOX_PORT)}/sent", shared.children)
    return shared


def stop_child(child: Child) -> None:
    child.terminate()
    child.wait_or_kill()


def base_environment() -> dict[str, str]:
    return {
        key: value for key, value in os.environ.items() if not key.upper().startswith(UNINHERITED)
    }


def host_environment(
    network: Network, name: str, root: Path, shared: Shared, run_secrets: Secrets
) -> dict[str, str]:
    host, db, ext = network.host(name), network.host("db"), network.host("ext")
    layout = Layout(root / name)
    layout.create()
    env = stack_environment(
        base_environment(),
        layout,
        shared.postgres.url,
        shared.redis.url,
        Ports(INTAKE_PORT, SANDBOX_PORT),
        run_secrets,
    )
    env.pop("LEADLINE_BACKUP_DIR")
    env.update(AWS)
    env.update(
        {
            "LEADLINE_REDIS_NAMESPACE": REDIS_NAMESPACE,
            "LEADLINE_PUBLIC_URL": url(host, INTAKE_PORT),
            "TWILIO_API_BASE": url(ext, SANDBOX_PORT),
            "TELEGRAM_API_BASE": url(ext, SANDBOX_PORT),
            "LEADLINE_BACKUP_URL": BACKUP_URL,
            "LEADLINE_S3_ENDPOINT_URL": url(db, S3_PORT),
            "LEADLINE_SCHEDULER_METRICS_PORT": "0",
        }
    )
    return env


@dataclass
class AppHost:
    """One of a and b: its settings and its three roles."""

    host: Host
    env: dict[str, str]
    logs: Path
    roles: dict[str, Child] = field(default_factory=dict)

    def __post_init__(self) -> None:
        address, name = self.host.address, self.host.name
        commands = {
            "intake": ["intake", "--host", address, "--port", str(INTAKE_PORT), "--workers", "1"],
            "worker": ["worker", "--processes", "1"],
            "scheduler": ["scheduler"],
        }
        self.roles = {
            role: Child(
                f"{name}-{role}",
                self.host.command([*LEADLINE, *args]),
                self.env,
                self.logs / f"{name}-{role}.log",
            )
            for role, args in commands.items()
        }

    @property
    def intake_url(self) -> str:
        return url(self.host, INTAKE_PORT)

    def start(self) -> None:
        for child in self.roles.values():
            child.start()
        wait_for(f"{self.host.name}'s intake", f"{self.intake_url}/healthz", self.children)

    @property
    def children(self) -> list[Child]:
        return list(self.roles.values())

    def kill_everything(self, known: list[int]) -> tuple[list[int], float]:
        """SIGKILL to `known` (listed beforehand, so nothing runs between the decision and the
        signal), then to whatever else is in the host's namespace, ours or not. Returns what
        was killed and when `known` had been signalled: nothing of theirs commits after it."""
        killed: list[int] = []
        signalled = time.time()
        for pids in (known, self.host.pids()):
            for pid in pids:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            if pids is known:
                signalled = time.time()
        for child in self.children:
            if child.process is not None:
                child.process.wait()
        return sorted(set(killed)), signalled


def scheduler_leader(database_url: str, hosts: dict[str, str]) -> str | None:
    """The host whose session holds the scheduler's advisory lock (None: nobody's)."""
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        (key,) = conn.execute("SELECT hashtextextended(%s, 0)", (SCHEDULER_LOCK,)).fetchone() or (
            None,
        )
        rows = conn.execute(
            "SELECT l.classid::bigint, l.objid::bigint, host(a.client_addr) FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        ).fetchall()
    for high, low, address in rows:
        held = (int(high) << 32) | int(low)
        if held >= 1 << 63:
            held -= 1 << 64
        if held == key:
            return hosts.get(str(address), f"an address outside the run ({address})")
    return None


def broker_ids(client: redis.Redis) -> set[str]:
    """Every Dramatiq broker that ever dispatched (Redis heartbeats), by its id."""
    return {member.decode() for member in client.zrange(f"{REDIS_NAMESPACE}:__heartbeats__", 0, -1)}


def held_messages(client: redis.Redis, brokers: set[str]) -> dict[str, str]:
    """Message id → queue, for every message these brokers took and never acknowledged."""
    held: dict[str, str] = {}
    for broker in brokers:
        prefix = f"{REDIS_NAMESPACE}:__acks__.{broker}."
        for key in client.scan_iter(match=f"{prefix}*"):
            queue = key.decode()[len(prefix) :]
            held.update({member.decode(): queue for member in client.smembers(key)})
    return held


# What each actor's message names (its second argument), and the table that row is in.
ROW_ACTORS = {
    "process_event": "inbound_events",
    "send_sms": "outbound_messages",
    "send_telegram": "outbound_messages",
    "deliver_webhook": "webhook_deliveries",
    "deliver_webhooks": "webhook_deliveries",  # a list of ids
}


def held_rows(
    client: redis.Redis, held: dict[str, str]
) -> tuple[Counter[str], dict[str, list[str]]]:
    """The held messages by actor, and the rows they name by table (bodies are still in
    `<queue>.msgs`; job messages name no row)."""
    actors: Counter[str] = Counter()
    rows: dict[str, list[str]] = {}
    for message_id, queue in held.items():
        body = client.hget(f"{REDIS_NAMESPACE}:{queue}.msgs", message_id)
        message = json.loads(body) if body is not None else {}
        actor = str(message.get("actor_name", "(body gone)"))
        actors[actor] += 1
        args = message.get("args", [])
        if actor in ROW_ACTORS and len(args) > 1:
            named = args[1] if isinstance(args[1], list) else [args[1]]
            rows.setdefault(ROW_ACTORS[actor], []).extend(str(row) for row in named)
    return actors, rows
