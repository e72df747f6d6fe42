"""The HTTP side of deliveries: one guarded AsyncClient per worker process, bounded in flight.

Requests run on the event loop thread that Dramatiq's AsyncIO middleware starts in every
worker process. The actor only claims a row and hands the request over, so a handful of worker
threads keep hundreds of requests in flight; results are written back in batches by a recorder
thread (tasks.webhooks.recorder), so the event loop never waits on the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import httpcore
import httpx
from dramatiq.asyncio import get_event_loop_thread

from leadline.clock import Clock
from leadline.errors import ConfigError
from leadline.logging import get_logger
from leadline.netguard import (
    Resolver,
    UnsafeTargetError,
    build_async_client,
    read_capped,
    system_resolver,
)
from leadline.settings import Settings
from leadline.webhook_signature import signed_headers
from models.webhook_endpoints import UrlPolicy
from tasks.webhooks.policy import AttemptResult, honoured_retry_after

log = get_logger(__name__)
# httpx logs every request's full URL at INFO; customers' URLs may carry tokens.
logging.getLogger("httpx").setLevel(logging.WARNING)
T = TypeVar("T")
USER_AGENT = "Leadline-Webhooks/1"
CONNECTIONS_PER_CLIENT = 10
ERROR_TEXT_LIMIT = 200


@dataclass(frozen=True)
class WebhookClaim:
    """Everything one attempt needs, decrypted, so the request runs without the database."""

    delivery_id: uuid.UUID
    org_id: uuid.UUID
    endpoint_id: uuid.UUID
    url: str
    msg_id: str
    body: bytes
    keys: tuple[bytes, ...]


@dataclass
class TransportOverrides:
    """Where DNS answers and TCP connects come from; tests substitute instrumented ones."""

    resolver: Resolver = system_resolver
    network_backend: httpcore.AsyncNetworkBackend | None = None


_overrides = TransportOverrides()


def set_transport_overrides(
    resolver: Resolver = system_resolver,
    network_backend: httpcore.AsyncNetworkBackend | None = None,
) -> None:
    global _overrides
    _overrides = TransportOverrides(resolver, network_backend)


def current_resolver() -> Resolver:
    return _overrides.resolver


def _request_headers(claim: WebhookClaim, timestamp: int) -> dict[str, str]:
    return {
        **signed_headers(claim.keys, claim.msg_id, timestamp, claim.body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def _failure(started: float, started_at: datetime, error_class: str, text: str) -> AttemptResult:
    return AttemptResult(
        started_at=started_at,
        duration_ms=_elapsed_ms(started),
        error_class=error_class,
        error_text=text[:ERROR_TEXT_LIMIT],
    )


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def attempt_delivery(
    client: httpx.AsyncClient, claim: WebhookClaim, clock: Clock, timeout: float
) -> AttemptResult:
    """One signed POST. Never raises for the receiver's or the network's failures."""
    started_at, started = clock(), time.monotonic()
    headers = _request_headers(claim, int(started_at.timestamp()))
    try:
        async with asyncio.timeout(timeout):
            request = client.build_request("POST", claim.url, content=claim.body, headers=headers)
            response = await client.send(request, stream=True)
            await read_capped(response)  # drained (bounded) so the connection can be reused
    except UnsafeTargetError as exc:
        return _failure(started, started_at, "refused_target", exc.reason)
    except (TimeoutError, httpx.TimeoutException):
        return _failure(started, started_at, "timeout", f"no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return _failure(started, started_at, "network_error", type(exc).__name__)
    retry_after = honoured_retry_after(
        response.status_code, response.headers.get("retry-after"), clock()
    )
    return AttemptResult(
        started_at=started_at,
        duration_ms=_elapsed_ms(started),
        status=response.status_code,
        error_text=None if response.is_success else f"receiver answered {response.status_code}",
        retry_after=retry_after,
    )


class ClientPool:
    """Guarded AsyncClients of CONNECTIONS_PER_CLIENT connections each; requests go to the
    least busy one.

    httpcore's pool does work quadratic in its number of connections on every request, so one
    client with hundreds of connections spends milliseconds of CPU per request; many small
    pools keep that cost negligible while the process still holds `limit` requests in flight.
    """

    def __init__(self, policy: UrlPolicy, timeout: float, limit: int) -> None:
        count = max(1, -(-limit // CONNECTIONS_PER_CLIENT))
        self._clients = [self._client(policy, timeout) for _ in range(count)]
        self._busy = [0] * count

    @staticmethod
    def _client(policy: UrlPolicy, timeout: float) -> httpx.AsyncClient:
        return build_async_client(
            allow_http=policy.allow_http,
            allow_private=policy.allow_private,
            resolver=_overrides.resolver,
            network_backend=_overrides.network_backend,
            timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
            max_connections=CONNECTIONS_PER_CLIENT,
        )

    @contextlib.contextmanager
    def lease(self) -> Iterator[httpx.AsyncClient]:
        """Only ever used on the event loop thread, so the counters need no lock."""
        index = min(range(len(self._busy)), key=self._busy.__getitem__)
        self._busy[index] += 1
        try:
            yield self._clients[index]
        finally:
            self._busy[index] -= 1


class Dispatcher:
    """Runs delivery coroutines on the worker's event loop, at most `limit` at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._in_flight: set[Future[None]] = set()
        self._lock = threading.Condition()
        # (event loop, policy, timeout, transport overrides): see pool()
        self._pools: dict[tuple[int, UrlPolicy, float, int], ClientPool] = {}

    def submit(self, coroutine: Coroutine[object, object, None]) -> Future[None]:
        """Blocks the calling worker thread while `limit` requests are already in flight."""
        loop_thread = get_event_loop_thread()
        if loop_thread is None:
            coroutine.close()
            raise ConfigError("webhook delivery needs the AsyncIO middleware's event loop")
        with self._lock:
            self._lock.wait_for(lambda: len(self._in_flight) < self.limit)
            future = asyncio.run_coroutine_threadsafe(coroutine, loop_thread.loop)
            self._in_flight.add(future)
        future.add_done_callback(self._finished)
        return future

    def wait_idle(self, timeout: float) -> bool:
        """True once no request is in flight (used when a worker stops)."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._in_flight, timeout)

    def cancel_all(self) -> int:
        """Cancel what is still running, so the event loop can stop with no task pending."""
        with self._lock:
            leftovers = list(self._in_flight)
        for future in leftovers:
            future.cancel()
        return len(leftovers)

    def _finished(self, future: Future[None]) -> None:
        with self._lock:
            self._in_flight.discard(future)
            self._lock.notify_all()
        if not future.cancelled() and future.exception() is not None:
            log.error("webhook delivery crashed", error=type(future.exception()).__name__)

    def pool(self, settings: Settings) -> ClientPool:
        """The process's shared clients for this policy; call on the event loop thread."""
        policy = UrlPolicy.from_settings(settings)
        timeout = settings.leadline_webhook_timeout_seconds
        loop = asyncio.get_running_loop()
        key = (id(loop), policy, timeout, id(_overrides))
        pool = self._pools.get(key)
        if pool is None:
            # A new event loop (worker restarted) makes the old clients unusable: drop them.
            self._pools = {k: p for k, p in self._pools.items() if k[0] == id(loop)}
            pool = self._pools[key] = ClientPool(policy, timeout, self.limit)
        return pool


_dispatcher: Dispatcher | None = None
_dispatcher_lock = threading.Lock()


def get_dispatcher(settings: Settings) -> Dispatcher:
    global _dispatcher
    with _dispatcher_lock:
        if _dispatcher is None:
            _dispatcher = Dispatcher(settings.leadline_webhook_max_in_flight)
        return _dispatcher
