"""/readyz follows its dependencies; /metrics counters move with real traffic and failures."""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import dramatiq
import httpx
import pytest
from starlette.testclient import TestClient

from leadline.settings import Settings
from models.db import Database
from tests.helpers import wait_for
from tests.support.operations import (
    FlakyActor,
    dead_letter_row,
    declare_flaky_actor,
    metric_value,
    run_cli,
)
from tests.support.services import Org

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def flaky(broker: dramatiq.Broker) -> FlakyActor:
    return declare_flaky_actor(broker, "test_metrics_always_fails")


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port bound but not listening: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def test_readyz_turns_503_when_redis_the_broker_or_postgres_is_unreachable_and_back(
    context: TaskContext, broker: dramatiq.Broker, refused_port: int
) -> None:
    from intake.app import create_fastapi
    from workers.runtime import build_broker, install_broker

    app = create_fastapi(context)
    no_broker = build_broker(f"amqp://guest:guest@127.0.0.1:{refused_port}/%2F", "unreachable")
    no_redis = dataclasses.replace(
        context,
        settings=context.settings.model_copy(
            update={"leadline_redis_url": f"redis://127.0.0.1:{refused_port}/0"}
        ),
    )
    no_postgres_db = Database(f"postgresql://postgres@127.0.0.1:{refused_port}/leadline")
    no_postgres = dataclasses.replace(context, db=no_postgres_db)
    with TestClient(app) as client:
        assert client.get("/readyz").json() == {
            "status": "ready",
            "checks": {"postgres": "ok", "redis": "ok", "broker": "ok", "migrations": "ok"},
        }
        install_broker(no_broker)  # RabbitMQ as the broker, and nothing listening there
        try:
            down = client.get("/readyz")
        finally:
            install_broker(broker)
        assert down.status_code == 503
        assert down.json()["checks"]["broker"] == "unreachable: AMQPConnectionError"
        assert down.json()["checks"]["redis"] == "ok"
        app.state.context = no_redis
        down = client.get("/readyz")
        assert down.status_code == 503
        assert down.json()["checks"]["redis"].startswith("unreachable")
        assert down.json()["checks"]["postgres"] == "ok"
        app.state.context = no_postgres
        down = client.get("/readyz")
        assert down.status_code == 503
        assert down.json()["checks"]["postgres"] == "unreachable: OperationalError"
        assert str(refused_port) not in down.text
        app.state.context = context
        assert client.get("/readyz").status_code == 200
    no_postgres_db.dispose()


def test_leadline_status_prints_the_same_checks(settings: Settings, refused_port: int) -> None:
    down = run_cli(settings, "status", LEADLINE_REDIS_URL=f"redis://127.0.0.1:{refused_port}/0")
    assert down.returncode == 1
    assert down.stdout.splitlines()[0] == "unready"
    assert "redis       unreachable: ConnectionError" in down.stdout
    assert "broker      unreachable: ConnectionError" in down.stdout  # the same Redis


def test_leadline_status_checks_the_configured_broker(
    settings: Settings, refused_port: int
) -> None:
    rabbitmq = f"amqp://guest:guest@127.0.0.1:{refused_port}/%2F"
    down = run_cli(settings, "status", "--json", LEADLINE_BROKER_URL=rabbitmq)
    assert down.returncode == 1
    checks = json.loads(down.stdout)["checks"]
    assert checks == {
        "postgres": "ok",
        "redis": "ok",
        "broker": "unreachable: AMQPConnectionError",
        "migrations": "ok",
    }
    assert str(refused_port) not in down.stdout


def scrape(client: TestClient) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.text


def test_metrics_move_with_accepted_rejected_and_dead_lettered(
    client: TestClient,
    make_org: Callable[[], Org],
    context: TaskContext,
    flaky: FlakyActor,
    worker: dramatiq.Worker,
) -> None:
    org = make_org()
    before = scrape(client)
    lead = {"name": "Grace", "email": "grace@example.com", "consent": {"sms": False}}
    assert client.post("/v1/leads", json=lead, headers=org.auth).status_code == 202
    assert (
        client.post("/v1/leads", json=lead, headers={"Authorization": "Bearer x"}).status_code
        == 401
    )
    assert client.post("/v1/leads", json={"name": 5}, headers=org.auth).status_code == 422
    big = "x" * (context.settings.leadline_max_body_bytes + 10)
    assert client.post("/v1/leads", content=big, headers=org.auth).status_code == 413
    assert client.get("/v1/nothing-here").status_code == 404
    flaky.broken.set()
    message_id = flaky.actor.send("lead-m1").message_id
    wait_for(lambda: dead_letter_row(context, message_id))
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert moved("leadline_events_accepted_total", source="api") == 1
    assert moved("leadline_events_rejected_total", source="api", reason="bad_api_key") == 1
    assert moved("leadline_events_rejected_total", source="api", reason="invalid") == 1
    assert moved("leadline_events_rejected_total", source="api", reason="too_large") == 1
    assert moved("leadline_dead_letters_total", actor=flaky.actor.actor_name) == 1
    assert metric_value(after, "leadline_dead_letters_open", queue=flaky.queue) >= 1
    assert "leadline_queue_depth" in after and f'queue="{flaky.queue}"' in after
    assert "grace" not in after.lower()


def test_the_worker_exports_its_own_metrics(
    context: TaskContext, flaky: FlakyActor, worker: dramatiq.Worker
) -> None:
    from workers.exporter import serve_metrics_and_probes, worker_probes

    probes = worker_probes(context.db, worker.broker, stale_after=30)  # type: ignore[arg-type]
    exporter = serve_metrics_and_probes("127.0.0.1", 0, probes)
    try:
        flaky.broken.clear()
        flaky.runs.clear()
        message_id = flaky.actor.send("lead-m2").message_id
        wait_for(lambda: flaky.runs == [message_id])
        worker.join()
        text = httpx.get(f"http://127.0.0.1:{exporter.port}/metrics", timeout=5).text
    finally:
        exporter.stop()
    count = "leadline_actor_duration_seconds_count"
    assert metric_value(text, count, actor=flaky.actor.actor_name, outcome="ok") >= 1
