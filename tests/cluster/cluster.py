"""The cluster the run builds: four namespaces, db's and ext's servers, the roles of a and b,
and what the run asks of it while it runs (the scheduler's leader, counters for figures).
a starts first; b only once a's scheduler leads and a's worker has reached the broker, so
the broker ids seen then are a's alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.chaos.processes import Child
from tests.chaos.stack import Secrets, leadline_cli
from tests.cluster import figures, guard
from tests.cluster.errors import ClusterError
from tests.cluster.network import Network
from tests.cluster.stack import (
    APP_HOSTS,
    BUCKET,
    S3_PORT,
    AppHost,
    Shared,
    broker_ids,
    host_environment,
    scheduler_leader,
    start_shared,
    url,
)
from tests.support.s3 import raw_client

LEADER_WITHIN_SECONDS = 60.0


@dataclass
class Cluster:
    network: Network
    shared: Shared
    hosts: dict[str, AppHost]
    secrets: Secrets
    broker: redis.Redis
    a_brokers: set[str] = field(default_factory=set)  # Dramatiq broker ids of a's processes

    @property
    def database_url(self) -> str:
        return self.shared.postgres.url

    def roles(self) -> list[Child]:
        return [child for host in self.hosts.values() for child in host.children]

    def reading(self) -> figures.Reading:
        servers = self.network.host("db").pids()
        return figures.read(self.roles(), servers, self.database_url, self.broker)

    def leader(self) -> str | None:
        return scheduler_leader(self.database_url, self.network.addresses())


def start(
    network: Network, root: Path, seed: int, cleanup: ExitStack, say: Callable[[str], None]
) -> Cluster:
    network.create()
    say(
        f"  subnet {network.subnet}: bridge {network.bridge} at {network.gateway}, "
        + ", ".join(f"{name} {host.address}" for name, host in network.hosts.items())
    )
    (root / "logs").mkdir(parents=True)
    shared = start_shared(network, root, seed, cleanup)
    run_secrets = Secrets()
    envs = {name: host_environment(network, name, root, shared, run_secrets) for name in APP_HOSTS}
    checked = guard.require_inside(
        [{f"{name}: {key}": value for key, value in env.items()} for name, env in envs.items()],
        network.addresses(),
    )
    say(f"  {len(checked)} URLs in the roles' settings, each on a host of this run")
    raw_client(url(network.host("db"), S3_PORT)).create_bucket(Bucket=BUCKET)
    leadline_cli(envs["a"], "migrate", "migrate")
    broker = redis.Redis.from_url(shared.redis.url, socket_timeout=10)
    cleanup.callback(broker.close)
    hosts = {name: AppHost(network.host(name), envs[name], root / "logs") for name in APP_HOSTS}
    for host in hosts.values():
        cleanup.callback(stop_roles, host)
    cluster = Cluster(network, shared, hosts, run_secrets, broker)
    hosts["a"].start()
    wait_until(lambda: cluster.leader() == "a", "a's scheduler to lead")
    wait_until(lambda: bool(broker_ids(broker)), "a's worker to reach the broker")
    cluster.a_brokers = broker_ids(broker)
    hosts["b"].start()
    return cluster


def stop_roles(host: AppHost) -> None:
    for child in host.children:
        child.terminate()
    for child in host.children:
        child.wait_or_kill()


def wait_until(
    condition: Callable[[], bool], what: str, timeout: float = LEADER_WITHIN_SECONDS
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise ClusterError(f"waited {timeout:.0f} s for {what}")
