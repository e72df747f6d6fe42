"""The HTTP side of deliveries: one guarded aiohttp client per worker process, bounded in flight.

Requests run on the event loop thread that Dramatiq's AsyncIO middleware starts in every
worker process. The actor only claims a row and hands the request over, so a handful of worker
threads keep hundreds of requests in flight; results are written back in batches by a recorder
thread (tasks.webhooks.recorder), so the event loop never waits on the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import aiohttp
from dramatiq.asyncio import get_event_loop_thread

from leadline.clock import Clock
from leadline.errors import ConfigError
from leadline.logging import get_logger
from leadline.netguard import (
    GuardedClient,
    GuardPolicy,
    Resolver,
    SocketFactory,
    UnsafeTargetError,
    plain_socket,
    system_resolver,
)
from leadline.settings import Settings
from leadline.webhook_signature import signed_headers
from models.webhook_endpoints import UrlPolicy
from tasks.webhooks.policy import AttemptResult, honoured_retry_after

log = get_logger(__name__)
T = TypeVar("T")
USER_AGENT = "Leadline-Webhooks/1"
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
    """Where DNS answers and sockets come from; tests substitute instrumented ones."""

    resolver: Resolver = system_resolver
    socket_factory: SocketFactory = plain_socket


_overrides = TransportOverrides()


def set_transport_overrides(
    resolver: Resolver = system_resolver, socket_factory: SocketFactory = plain_socket
) -> None:
    global _overrides
    _overrides = TransportOverrides(resolver, socket_factory)


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
    client: GuardedClient, claim: WebhookClaim, clock: Clock, timeout: float
) -> AttemptResult:
    """One signed POST. Never raises for the receiver's or the network's failures."""
    started_at, started = clock(), time.monotonic()
    headers = _request_headers(claim, int(started_at.timestamp()))
    try:
        async with asyncio.timeout(timeout):
            response = await client.post(claim.url, claim.body, headers)
    except UnsafeTargetError as exc:
        return _failure(started, started_at, "refused_target", exc.reason)
    except TimeoutError:
        return _failure(started, started_at, "timeout", f"no answer within {timeout:g} s")
    except aiohttp.ClientError as exc:
        return _failure(started, started_at, "network_error", type(exc).__name__)
    retry_after = honoured_retry_after(
        response.status, response.headers.get("retry-after"), clock()
    )
    return AttemptResult(
        started_at=started_at,
        duration_ms=_elapsed_ms(started),
        status=response.status,
        error_text=None if response.is_success else f"receiver answered {response.status}",
        retry_after=retry_after,
    )


def guarded_client(policy: UrlPolicy, timeout: float, limit: int) -> GuardedClient:
    """The process's client for one URL policy: up to `limit` connections, the transport
    overrides in force. aiohttp's pool hands out a kept-alive connection in constant time,
    so one client holds every request in flight."""
    return GuardedClient(
        GuardPolicy(policy.allow_http, policy.allow_private, _overrides.resolver),
        socket_factory=_overrides.socket_factory,
        timeout=aiohttp.ClientTimeout(total=timeout, connect=min(5.0, timeout)),
        max_connections=limit,
    )


class Dispatcher:
    """Runs delivery coroutines on the worker's event loop, at most `limit` at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._in_flight: set[Future[None]] = set()
        self._lock = threading.Condition()
        # (event loop, policy, timeout, transport overrides): see client()
        self._clients: dict[tuple[int, UrlPolicy, float, int], GuardedClient] = {}

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

    def close_clients(self, timeout: float) -> None:
        """Close the clients and their kept-alive connections, on the event loop thread (a
        stopping worker, once no request is in flight)."""
        clients, self._clients = list(self._clients.values()), {}
        loop_thread = get_event_loop_thread()
        if loop_thread is None or not clients:
            return

        async def close_all() -> None:
            await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)

        future = asyncio.run_coroutine_threadsafe(close_all(), loop_thread.loop)
        with contextlib.suppress(TimeoutError):
            future.result(timeout)

    def client(self, settings: Settings) -> GuardedClient:
        """The process's shared client for this policy; call on the event loop thread."""
        policy = UrlPolicy.from_settings(settings)
        timeout = settings.leadline_webhook_timeout_seconds
        loop = asyncio.get_running_loop()
        key = (id(loop), policy, timeout, id(_overrides))
        client = self._clients.get(key)
        if client is None:
            # A new event loop (worker restarted) makes the old clients unusable: drop them.
            self._clients = {k: c for k, c in self._clients.items() if k[0] == id(loop)}
            client = self._clients[key] = guarded_client(policy, timeout, self.limit)
        return client


_dispatcher: Dispatcher | None = None
_dispatcher_lock = threading.Lock()


def get_dispatcher(settings: Settings) -> Dispatcher:
    global _dispatcher
    with _dispatcher_lock:
        if _dispatcher is None:
            _dispatcher = Dispatcher(settings.leadline_webhook_max_in_flight)
        return _dispatcher
