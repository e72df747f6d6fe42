"""Webhook fan-out: 1,000 deliveries to a local receiver answering in 100 ms, one worker process.

Target (DESIGN.md): all delivered in under 5 s. The receiver runs in its own process on
127.0.0.1 so it does not share the worker's GIL; the worker is real Dramatiq threads on the real
Redis broker with the webhook event loop, in this process. A fresh database and Redis namespace
are created on the configured servers (or embedded ones) and removed afterwards.

    python -m bench.webhook_fanout
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import multiprocessing
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

DELIVERIES = 1000
RECEIVER_DELAY = 0.1
TIMEOUT = 120.0


# --------------------------------------------------------------------------- the receiver


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            await reader.readexactly(length)
            await asyncio.sleep(delay)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _serve(port_out: Any, ready: Any, delay: float) -> None:
    async def main() -> None:
        answer = functools.partial(_answer, delay=delay)
        server = await asyncio.start_server(answer, "127.0.0.1", 0, backlog=2048)
        port_out.value = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@contextlib.contextmanager
def slow_receiver() -> Iterator[str]:
    spawn = multiprocessing.get_context("spawn")
    port, ready = spawn.Value("i", 0), spawn.Event()
    process = spawn.Process(target=_serve, args=(port, ready, RECEIVER_DELAY), daemon=True)
    process.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("receiver did not start")
        yield f"http://127.0.0.1:{port.value}/hooks"
    finally:
        process.terminate()
        process.join(10)


# --------------------------------------------------------------------------- services


@contextlib.contextmanager
def bench_settings() -> Iterator[Any]:
    """Settings on a throwaway database and Redis namespace."""
    import psycopg
    from pydantic import SecretStr
    from sqlalchemy.engine import make_url

    from leadline.bootstrap import with_embedded_services
    from leadline.settings import Settings

    base = with_embedded_services(
        Settings(leadline_state_dir=tempfile.mkdtemp(prefix="leadline-bench-"))
    )
    assert base.leadline_database_url is not None
    admin = make_url(base.leadline_database_url).set(drivername="postgresql")
    name = f"leadline_bench_{uuid.uuid4().hex[:10]}"
    admin_url = admin.render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.model_copy(
            update={
                "leadline_env": "development",
                "leadline_database_url": admin.set(database=name).render_as_string(
                    hide_password=False
                ),
                "leadline_redis_namespace": f"leadline-bench-{name}",
                "leadline_master_keys": SecretStr(
                    "bench:" + base64.b64encode(os.urandom(32)).decode()
                ),
                "leadline_allow_private_webhook_targets": True,
            }
        )
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _delete_namespace(settings: Any) -> None:
    import redis

    client = redis.Redis.from_url(str(settings.leadline_redis_url))
    keys = list(client.scan_iter(match=f"{settings.leadline_redis_namespace}:*", count=1000))
    if keys:
        client.delete(*keys)


# --------------------------------------------------------------------------- the run


def _prepare(context: Any, url: str) -> uuid.UUID:
    from models.orgs import create_organization
    from models.webhook_endpoints import EndpointSpec, UrlPolicy, create_endpoint

    org_id = uuid.uuid4()
    with context.db.tenant(org_id) as session:
        create_organization(session, context.keyring, org_id, "Bench", actor="bench")
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        policy = UrlPolicy.from_settings(context.settings)
        create_endpoint(session, cipher, EndpointSpec(url, ("lead.created",)), policy)
    return org_id


def _fan_out(context: Any, org_id: uuid.UUID) -> Any:
    from models.webhooks import EventType
    from tasks.after_commit import AfterCommit
    from tasks.domain_events import DomainEvent, publish

    after_commit = AfterCommit()
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        for _ in range(DELIVERIES):
            data = {"lead_id": str(uuid.uuid4()), "source": "bench"}
            publish(
                DomainEvent(
                    session, cipher, EventType.LEAD_CREATED, data, after_commit, context.clock()
                )
            )
    return after_commit


def _delivered(context: Any, org_id: uuid.UUID) -> int:
    from sqlalchemy import func, select

    from models.webhooks import WebhookDelivery

    with context.db.tenant(org_id) as session:
        query = select(func.count()).where(WebhookDelivery.state == "delivered")
        return int(session.scalar(query) or 0)


def _wait_all_delivered(context: Any, org_id: uuid.UUID) -> None:
    deadline = time.monotonic() + TIMEOUT
    while _delivered(context, org_id) < DELIVERIES:
        if time.monotonic() > deadline:
            raise RuntimeError("deliveries did not finish in time")
        time.sleep(0.02)


def measure(settings: Any, url: str) -> dict[str, float]:
    import dramatiq

    from models.migrate import upgrade
    from tasks.context import open_runtime

    context = open_runtime(settings)
    upgrade(context.db.owner_engine)
    org_id = _prepare(context, url)
    broker = dramatiq.get_broker()
    worker = dramatiq.Worker(
        broker, worker_threads=settings.leadline_worker_threads, worker_timeout=100
    )
    worker.start()
    try:
        started = time.perf_counter()
        after_commit = _fan_out(context, org_id)
        fanned_out, cpu_before = time.perf_counter(), time.process_time()
        after_commit.flush()
        _wait_all_delivered(context, org_id)
        finished, cpu_used = time.perf_counter(), time.process_time() - cpu_before
    finally:
        worker.stop()
        broker.close()
        context.db.dispose()
    return {
        "webhook_fanout_rows_seconds": round(fanned_out - started, 3),
        "webhook_delivery_seconds": round(finished - fanned_out, 3),
        "webhook_total_seconds": round(finished - started, 3),
        "webhook_deliveries_per_second": round(DELIVERIES / (finished - fanned_out), 1),
        "webhook_worker_cpu_ms_per_delivery": round(cpu_used * 1000 / DELIVERIES, 2),
    }


def run() -> dict[str, float]:
    """Print and return the figures (seconds; the target is delivery in under 5 s)."""
    with bench_settings() as settings, slow_receiver() as url:
        try:
            figures = measure(settings, url)
        finally:
            _delete_namespace(settings)
    print(f"webhook fan-out: {DELIVERIES} deliveries, receiver answering in 100 ms")
    for name, value in figures.items():
        print(f"  {name}: {value}")
    return figures


if __name__ == "__main__":
    run()
