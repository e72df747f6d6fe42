"""Webhook fan-out: 1,000 deliveries to a local receiver answering in 100 ms, one worker
process, against two baselines posting the same number of requests to the same receiver with
the same number in flight: a bare httpx client (the issue's) and a bare aiohttp session (the
client the worker uses, so its physical limit).

The receiver runs in its own process on 127.0.0.1 so it does not share the worker's GIL. The
worker is real Dramatiq threads on the real Redis broker with the webhook event loop, in this
process; its CPU per delivery is this process's CPU time from the first message sent to the
last delivery recorded, less the benchmark thread's own (sending, polling for progress).
Round trips per delivery are counted by proxies on the wire (bench/roundtrips.py) in a
separate, smaller run through a proxied runtime.

Targets: all delivered in ≤ 2 s; CPU per delivery ≤ 3 times the bare httpx post's and ≤ 1 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import multiprocessing
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import TYPE_CHECKING

import aiohttp
import dramatiq
import httpx

from bench.pipeline import proxied_runtime
from bench.roundtrips import RoundTrips
from bench.setup import BenchEnv

if TYPE_CHECKING:
    from tasks.after_commit import AfterCommit
    from tasks.context import TaskContext

TARGETS = {
    "delivery_seconds": ("<=", 2.0),
    "cpu_ratio_to_bare_post": ("<=", 3.0),
    "worker_cpu_ms_per_delivery": ("<=", 1.0),
}
DELIVERIES = 1000
COUNTED_DELIVERIES = 300
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


def _serve(port_out: Synchronized[int], ready: Event, delay: float) -> None:
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


# --------------------------------------------------------------------------- the baseline


BODY = b'{"type":"lead.created","timestamp":"2026-01-01T00:00:00Z","data":{}}'
HEADERS = {"content-type": "application/json"}
PostRounds = list[tuple[float, float]]
HTTPX_CONNECTIONS_PER_CLIENT = 10


async def _timed_rounds(rounds: list[int], post: Callable[[], Awaitable[None]]) -> PostRounds:
    """(seconds, CPU ms per post) of each round of `count` concurrent posts."""
    measured = []
    for count in rounds:
        started, cpu_before = time.perf_counter(), time.process_time()
        await asyncio.gather(*(post() for _ in range(count)))
        cpu_ms = (time.process_time() - cpu_before) * 1000 / count
        measured.append((time.perf_counter() - started, cpu_ms))
    return measured


async def _bare_httpx_posts(url: str, rounds: list[int], in_flight: int) -> PostRounds:
    """Rounds of POSTs over httpx clients of HTTPX_CONNECTIONS_PER_CLIENT connections each:
    httpcore's pool does work quadratic in its connection count on every request, so this is
    httpx at its cheapest."""
    count = max(1, -(-in_flight // HTTPX_CONNECTIONS_PER_CLIENT))
    limits = httpx.Limits(max_connections=HTTPX_CONNECTIONS_PER_CLIENT)
    clients = [httpx.AsyncClient(limits=limits, trust_env=False) for _ in range(count)]
    gate = asyncio.Semaphore(in_flight)
    turn = itertools.count()

    async def post() -> None:
        async with gate:
            client = clients[next(turn) % count]
            response = await client.post(url, content=BODY, headers=HEADERS)
            response.raise_for_status()

    try:
        return await _timed_rounds(rounds, post)
    finally:
        for client in clients:
            await client.aclose()


async def _bare_aiohttp_posts(url: str, rounds: list[int], in_flight: int) -> PostRounds:
    """Rounds of POSTs on one aiohttp session of `in_flight` connections."""
    gate = asyncio.Semaphore(in_flight)
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post() -> None:
            async with gate, session.post(url, data=BODY, headers=HEADERS) as response:
                response.raise_for_status()
                await response.read()

        return await _timed_rounds(rounds, post)


def bare_post_baselines(url: str, in_flight: int) -> dict[str, tuple[float, float]]:
    """(seconds, CPU ms per post) of DELIVERIES bare posts with each client, after 100
    warm-up posts, the same warm-up the worker gets."""
    return {
        "httpx": asyncio.run(_bare_httpx_posts(url, [100, DELIVERIES], in_flight))[-1],
        "aiohttp": asyncio.run(_bare_aiohttp_posts(url, [100, DELIVERIES], in_flight))[-1],
    }


# --------------------------------------------------------------------------- the run


def _prepare(context: TaskContext, url: str) -> uuid.UUID:
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


def _fan_out(context: TaskContext, org_id: uuid.UUID, count: int) -> AfterCommit:
    from models.webhooks import EventType
    from tasks.after_commit import AfterCommit
    from tasks.domain_events import DomainEvent, publish

    after_commit = AfterCommit()
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        for _ in range(count):
            data = {"lead_id": str(uuid.uuid4()), "source": "bench"}
            publish(
                DomainEvent(
                    session, cipher, EventType.LEAD_CREATED, data, after_commit, context.clock()
                )
            )
    return after_commit


def _delivered(context: TaskContext, org_id: uuid.UUID) -> int:
    from sqlalchemy import func, select

    from models.webhooks import WebhookDelivery

    with context.db.tenant(org_id) as session:
        query = select(func.count()).where(WebhookDelivery.state == "delivered")
        return int(session.scalar(query) or 0)


def _wait_delivered(context: TaskContext, org_id: uuid.UUID, total: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while _delivered(context, org_id) < total:
        if time.monotonic() > deadline:
            raise RuntimeError("deliveries did not finish in time")
        time.sleep(0.05)


@contextlib.contextmanager
def running_worker(broker: dramatiq.Broker, threads: int) -> Iterator[None]:
    from workers.runtime import WORKER_IDLE_POLL_MS, tune_worker_process

    tune_worker_process()  # the same worker settings as `leadline worker`
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=WORKER_IDLE_POLL_MS)
    worker.start()
    try:
        yield
    finally:
        worker.stop()


def deliver(
    context: TaskContext, org_id: uuid.UUID, count: int, already: int
) -> tuple[float, float, float]:
    """(seconds to create the rows, seconds to deliver them, worker CPU ms per delivery).

    The worker's CPU is this process's minus this thread's: sending the fan-out's messages
    and polling the database for progress are the benchmark's work, not the worker's (the
    polling alone was a fifth of the process's samples under py-spy)."""
    started = time.perf_counter()
    after_commit = _fan_out(context, org_id, count)
    fanned_out = time.perf_counter()
    cpu_before, own_before = time.process_time(), time.thread_time()
    after_commit.flush()
    _wait_delivered(context, org_id, already + count)
    finished, own_cpu = time.perf_counter(), time.thread_time() - own_before
    cpu_used = time.process_time() - cpu_before - own_cpu
    return fanned_out - started, finished - fanned_out, cpu_used * 1000 / count


def count_round_trips(env: BenchEnv, url: str) -> RoundTrips:
    from tasks.context import get_context

    with proxied_runtime(env) as (broker, _, tally):
        context = get_context()
        org_id = _prepare(context, url)
        with running_worker(broker, env.settings.leadline_worker_threads):
            after_commit = _fan_out(context, org_id, COUNTED_DELIVERIES)
            tally.start()
            after_commit.flush()
            _wait_delivered(env.context, org_id, COUNTED_DELIVERIES)
            return tally.per(COUNTED_DELIVERIES)


def run(env: BenchEnv) -> dict[str, float]:
    in_flight = env.settings.leadline_webhook_max_in_flight
    with slow_receiver() as url:
        bare = bare_post_baselines(url, in_flight)
        org_id = _prepare(env.context, url)
        with running_worker(dramatiq.get_broker(), env.settings.leadline_worker_threads):
            deliver(env.context, org_id, 100, 0)  # warm-up: clients, prepared statements
            rows_seconds, seconds, cpu_ms = deliver(env.context, org_id, DELIVERIES, 100)
        trips = count_round_trips(env, url)
    env.note(
        f"{DELIVERIES} deliveries to a receiver answering in {RECEIVER_DELAY * 1000:.0f} ms, "
        f"{env.settings.leadline_worker_threads} worker threads, at most {in_flight} in flight; "
        "bare posts: httpx and aiohttp alone, same receiver, same in-flight cap"
    )
    env.note(
        "round trips (worker and its bookkeeping, per delivery, counted on the wire over "
        f"{COUNTED_DELIVERIES} deliveries; the bench's own progress polling is not proxied)"
    )
    return {
        "delivery_seconds": seconds,
        "deliveries_per_s": DELIVERIES / seconds,
        "rows_seconds": rows_seconds,
        "bare_post_seconds": bare["httpx"][0],
        "bare_aiohttp_seconds": bare["aiohttp"][0],
        "worker_cpu_ms_per_delivery": cpu_ms,
        "bare_post_cpu_ms": bare["httpx"][1],
        "bare_aiohttp_cpu_ms": bare["aiohttp"][1],
        "cpu_ratio_to_bare_post": cpu_ms / bare["httpx"][1],
        "cpu_ratio_to_bare_aiohttp": cpu_ms / bare["aiohttp"][1],
        "pg_round_trips": trips.postgres,
        "redis_round_trips": trips.redis,
    }
