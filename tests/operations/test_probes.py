"""The worker's and the scheduler's /healthz and /readyz, on their metrics port.

/healthz turns 503 when the loop stops turning (a paused worker's consumers, a stopped
scheduler loop), seen through an injected clock; /readyz turns 503 when Postgres or the broker
is unreachable (a closed loopback port), and both come back."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import dramatiq
import httpx
import pytest

from models.db import Database, sqlalchemy_url
from scheduler.leader import AdvisoryLeader
from scheduler.loop import Scheduler
from tests.helpers import wait_for
from tests.support.brokers import UNREACHABLE_URLS
from workers.exporter import MetricsServer, Probes, serve_metrics_and_probes, worker_probes
from workers.heartbeat import LoopHeartbeat
from workers.runtime import build_broker

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = [pytest.mark.integration, pytest.mark.both_brokers]
STALE_AFTER = 30.0


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def refused_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
def clock(broker: dramatiq.Broker) -> Iterator[FakeClock]:
    """The broker's consumer heartbeat on a fake clock, for one test."""
    fake = FakeClock()
    heartbeat = broker.heartbeat  # type: ignore[attr-defined]
    real, heartbeat.clock = heartbeat.clock, fake
    yield fake
    heartbeat.clock = real


def serving(probes: Probes) -> MetricsServer:
    return serve_metrics_and_probes("127.0.0.1", 0, probes)


def get(server: MetricsServer, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{server.port}{path}", timeout=10)


def status_of(server: MetricsServer, path: str) -> int:
    return get(server, path).status_code


def test_worker_healthz_turns_503_when_its_consumers_stop_polling_and_back(
    context: TaskContext, clock: FakeClock, worker: dramatiq.Worker
) -> None:
    server = serving(worker_probes(context.db, worker.broker, STALE_AFTER))  # type: ignore[arg-type]
    try:
        healthy = wait_for(
            lambda: (answer := get(server, "/healthz")).status_code == 200 and answer
        )
        consumers = healthy.json()["consumers"]
        assert consumers >= 2 and healthy.json()["stale"] == []  # each queue and delay queue

        worker.pause()  # every consumer loop stops polling the broker
        clock.now += STALE_AFTER + 1
        stuck = get(server, "/healthz")
        assert stuck.status_code == 503
        assert stuck.json()["status"] == "stale"
        assert len(stuck.json()["stale"]) == consumers
        assert {"events", "events.DQ"} <= set(stuck.json()["stale"])

        worker.resume()
        wait_for(lambda: status_of(server, "/healthz") == 200)
    finally:
        server.stop()


def test_worker_healthz_is_503_without_any_consumer(
    context: TaskContext, broker: dramatiq.Broker, clock: FakeClock
) -> None:
    server = serving(worker_probes(context.db, broker, STALE_AFTER))  # type: ignore[arg-type]
    try:
        answer = get(server, "/healthz")
    finally:
        server.stop()
    assert (answer.status_code, answer.json()) == (
        503,
        {"status": "stale", "consumers": 0, "stale": []},
    )


def test_worker_readyz_follows_postgres_and_the_broker(
    context: TaskContext, broker: dramatiq.Broker, refused_port: int
) -> None:
    kind = broker.kind  # type: ignore[attr-defined]
    no_postgres = Database(f"postgresql://postgres@127.0.0.1:{refused_port}/leadline")
    no_broker = build_broker(UNREACHABLE_URLS[kind].replace(":9/", f":{refused_port}/"), "down")
    servers = [
        serving(worker_probes(context.db, broker, STALE_AFTER)),  # type: ignore[arg-type]
        serving(worker_probes(no_postgres, broker, STALE_AFTER)),  # type: ignore[arg-type]
        serving(worker_probes(context.db, no_broker, STALE_AFTER)),
    ]
    try:
        ready, without_postgres, without_broker = (get(s, "/readyz") for s in servers)
        metrics = get(servers[0], "/metrics")
    finally:
        for server in servers:
            server.stop()
        no_postgres.dispose()
        no_broker.close()
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"postgres": "ok", "broker": "ok", "migrations": "ok"},
    }
    assert without_postgres.status_code == 503
    assert without_postgres.json()["checks"]["postgres"] == "unreachable: OperationalError"
    assert without_postgres.json()["checks"]["broker"] == "ok"
    assert without_broker.status_code == 503
    assert without_broker.json()["checks"]["broker"].startswith("unreachable: ")
    assert str(refused_port) not in without_postgres.text + without_broker.text
    assert metrics.status_code == 200 and "leadline_" in metrics.text


def test_scheduler_probes_follow_its_loop_postgres_and_the_broker(
    context: TaskContext, broker: dramatiq.Broker, refused_port: int
) -> None:
    clock = FakeClock()
    leader = AdvisoryLeader(
        sqlalchemy_url(context.settings.leadline_database_url), f"probe-test-{uuid.uuid4()}"
    )
    scheduler = Scheduler(context, leader, jobs=(), heartbeat=LoopHeartbeat(clock))
    no_broker = build_broker(UNREACHABLE_URLS[broker.kind], "down")  # type: ignore[attr-defined]
    server = serving(scheduler.probes(broker, STALE_AFTER))  # type: ignore[arg-type]
    unready = serving(scheduler.probes(no_broker, STALE_AFTER))
    stop = threading.Event()
    loop = threading.Thread(target=scheduler.run, args=(stop, 0.05))
    try:
        assert status_of(server, "/healthz") == 503  # it never turned yet
        loop.start()
        wait_for(lambda: status_of(server, "/healthz") == 200)
        assert get(server, "/readyz").json()["checks"] == {
            "postgres": "ok",
            "broker": "ok",
            "migrations": "ok",
        }
        assert get(unready, "/readyz").status_code == 503

        stop.set()  # the loop ends: nothing turns it any more
        loop.join(timeout=10)
        clock.now += STALE_AFTER + 1
        stale = get(server, "/healthz")
        assert stale.status_code == 503
        assert stale.json() == {"status": "stale", "last_turn_seconds_ago": STALE_AFTER + 1}
    finally:
        stop.set()
        server.stop()
        unready.stop()
        no_broker.close()
