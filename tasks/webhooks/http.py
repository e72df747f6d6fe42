"""The HTTP side of deliveries: one guarded AsyncClient per worker process, bounded in flight.

Requests run on the event loop thread that Dramatiq's AsyncIO middleware starts in every
worker process. The actor only claims a row and hands the request over, so a handful of worker
threads keep hundreds of requests in flight; the result is written back on a small thread pool
so the event loop never waits on the database.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

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
from models.endpoints import UrlPolicy
from tasks.webhooks.policy import AttemptResult, honoured_retry_after

log = get_logger(__name__)
# httpx logs every request's full URL at INFO; customers' URLs may carry tokens.
logging.getLogger("httpx").setLevel(logging.WARNING)
T = TypeVar("T")
USER_AGENT = "Leadline-Webhooks/1"
RECORDER_THREADS = 8
ERROR_TEXT_LIMIT = 200


@dataclass(frozen=True)
class Claim:
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


def _request_headers(claim: Claim, timestamp: int) -> dict[str, str]:
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
    client: httpx.AsyncClient, claim: Claim, clock: Clock, timeout: float
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


class Dispatcher:
    """Runs delivery coroutines on the worker's event loop, at most `limit` at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self._clients: dict[tuple[Any, ...], httpx.AsyncClient] = {}
        self._recorder = ThreadPoolExecutor(RECORDER_THREADS, thread_name_prefix="webhook-record")

    def submit(self, coroutine: Coroutine[Any, Any, None]) -> Future[None]:
        """Blocks the calling worker thread while `limit` requests are already in flight."""
        loop_thread = get_event_loop_thread()
        if loop_thread is None:
            coroutine.close()
            raise ConfigError("webhook delivery needs the AsyncIO middleware's event loop")
        self._slots.acquire()
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, loop_thread.loop)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._finished)
        return future

    def _finished(self, future: Future[None]) -> None:
        self._slots.release()
        if not future.cancelled() and future.exception() is not None:
            error = future.exception()
            log.error("webhook delivery crashed", error=type(error).__name__)

    async def in_recorder(self, fn: Any, *args: Any) -> Any:
        """Run blocking database work off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._recorder, fn, *args)

    def client(self, settings: Settings) -> httpx.AsyncClient:
        """The process's shared client for this policy; call on the event loop thread."""
        policy = UrlPolicy.from_settings(settings)
        timeout = settings.leadline_webhook_timeout_seconds
        loop = asyncio.get_running_loop()
        key = (id(loop), policy, timeout, id(_overrides))
        client = self._clients.get(key)
        if client is None:
            # A new event loop (worker restarted) makes the old clients unusable: drop them.
            self._clients = {k: c for k, c in self._clients.items() if k[0] == id(loop)}
            client = self._clients[key] = build_async_client(
                allow_http=policy.allow_http,
                allow_private=policy.allow_private,
                resolver=_overrides.resolver,
                network_backend=_overrides.network_backend,
                timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
                max_connections=self.limit,
            )
        return client


_dispatcher: Dispatcher | None = None
_dispatcher_lock = threading.Lock()


def get_dispatcher(settings: Settings) -> Dispatcher:
    global _dispatcher
    with _dispatcher_lock:
        if _dispatcher is None:
            _dispatcher = Dispatcher(settings.leadline_webhook_max_in_flight)
        return _dispatcher
