"""What every provider route shares: refusing, dropping and accepting a request.

A refusal is a short JSON error that never echoes the request, a metric, and a warning log
line (no payload, no headers) that is itself rate-limited so a flood cannot flood the logs.
Routes verify first and refuse after: only a request that failed verification is counted
against (and, once they are used up, refused by) its provider's failures from that address.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import SecretStr
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from intake.inbox import StoredEvent, is_door_optout, store_inbound_event
from intake.limits import FailureClass, count_auth_failure, limiter_of
from intake.rejections import label_rejection
from intake.responses import error_response
from intake.spool import RoutingCache, Spool, SpoolFull, database_unreachable, unavailable
from intake.verify import parse_json_object
from leadline.errors import VerificationError
from leadline.jsondata import JsonObject
from leadline.logging import get_logger
from leadline.metrics import EVENTS_REJECTED, EVENTS_SPOOLED
from models.cache import Cache
from models.routing import org_accepts_events
from tasks.context import TaskContext
from workers.sms_holds import hold_sms

log = get_logger("leadline.intake")
T = TypeVar("T")


@dataclass
class LogThrottle:
    """At most `limit` lines per key per `interval` seconds; reports how many it held back."""

    limit: int = 10
    interval: float = 60.0
    clock: Callable[[], float] = time.monotonic
    windows: dict[str, tuple[float, int]] = field(default_factory=dict)

    def allow(self, key: str) -> tuple[bool, int]:
        now = self.clock()
        start, count = self.windows.get(key, (now, 0))
        if now - start >= self.interval:
            suppressed = max(0, count - self.limit)
            self.windows[key] = (now, 1)
            return True, suppressed
        self.windows[key] = (start, count + 1)
        return count < self.limit, 0


def context_of(request: Request) -> TaskContext:
    context: TaskContext = request.app.state.context
    return context


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def configured(secret: SecretStr | None) -> str | None:
    """A secret that can verify anything: set and not blank."""
    if secret is None or not secret.get_secret_value().strip():
        return None
    return secret.get_secret_value()


def rejection_log(request: Request) -> LogThrottle:
    """The app's own throttle (one per app, so separate apps never silence each other)."""
    throttle: LogThrottle = request.app.state.rejection_log
    return throttle


def warn_throttled(request: Request, message: str, source: str, reason: str) -> None:
    allowed, suppressed = rejection_log(request).allow(f"{source}:{reason}")
    if allowed:
        log.warning(message, source=source, reason=reason, suppressed=suppressed)


FAILURE_CLASSES: dict[str, FailureClass] = {
    "api": "signed_leads",
    "twilio_sms": "twilio",
    "twilio_status": "twilio",
    "stripe": "stripe",
    "telegram": "telegram",
    "meta": "meta",
}


async def reject(request: Request, source: str, reason: str) -> Response:
    """403 for a request that failed verification (429 once its address has failed too often
    on this source's route class); nothing is stored."""
    label_rejection(request, reason)
    await count_auth_failure(request, FAILURE_CLASSES[source])
    warn_throttled(request, "inbound request refused", source, reason)
    return error_response(403, "verification failed")


# A verified (or not yet verifiable) request we cannot take is answered with its status and a
# short message; intake.rejections counts it by route and status.


def unsupported_type() -> Response:
    return error_response(415, "unsupported content type")


def malformed() -> Response:
    return error_response(400, "malformed body")


def drop(request: Request, source: str, reason: str) -> Response:
    """2xx for a verified event we will not keep, so a provider that retries stops retrying."""
    EVENTS_REJECTED.labels(source=source, reason=reason).inc()
    warn_throttled(request, "verified event dropped", source, reason)
    return JSONResponse({"received": True})


# verify(secret, raw body, signature header) raises VerificationError unless the header signs it.
Verifier = Callable[[str, bytes, str], None]


async def verified_json(
    request: Request, source: str, secret: SecretStr | None, header: str, verify: Verifier
) -> JsonObject | Response:
    """The JSON object of a request whose `header` verifies under `secret`, checked on the raw
    body before it is parsed; else the refusal to answer with (415, 403 or 400)."""
    if media_type(request) != "application/json":
        return unsupported_type()
    key = configured(secret)
    signature = request.headers.get(header)
    body = await request.body()
    if key is None or not signature:
        return await reject(
            request, source, "not_configured" if key is None else "missing_signature"
        )
    try:
        verify(key, body, signature)
        return parse_json_object(body)
    except VerificationError:
        return await reject(request, source, "bad_signature")
    except ValueError:
        return malformed()


async def in_maintenance(context: TaskContext, lookup: Callable[[Session], T]) -> T:
    def run() -> T:
        with context.db.maintenance() as session:
            return lookup(session)

    return await run_in_threadpool(run)


# Org routings of verified requests, kept in-process until the tables they come from change
# anywhere (models/cache.py): a hit costs no database round trip and no threadpool hop.
ROUTINGS: dict[str, Cache[str, uuid.UUID]] = {
    "number": Cache(("org_phone_numbers",)),
    "stripe_customer": Cache(("org_billing",)),
    "meta_accounts": Cache(("meta_accounts",)),
    "open_org": Cache(("organizations",)),
}


async def cached_org(
    kind: str, key: str, lookup: Callable[[], Awaitable[uuid.UUID | None]]
) -> uuid.UUID | None:
    """`lookup()` through the routing cache of `kind`; only found orgs are kept."""
    cache = ROUTINGS[kind]
    hit = cache.peek(key)
    if isinstance(hit, uuid.UUID):
        return hit
    token = cache.token()
    org_id = await lookup()
    if org_id is not None:
        cache.store(key, org_id, token)
    return org_id


async def routed_in_maintenance(
    context: TaskContext, kind: str, key: str, lookup: Callable[[Session], uuid.UUID | None]
) -> uuid.UUID | None:
    return await cached_org(kind, key, lambda: in_maintenance(context, lookup))


async def org_is_open(context: TaskContext, org_id: uuid.UUID) -> bool:
    def run() -> uuid.UUID | None:
        with context.db.tenant(org_id) as session:
            return org_id if org_accepts_events(session, org_id) else None

    async def lookup() -> uuid.UUID | None:
        return await run_in_threadpool(run)

    return await cached_org("open_org", str(org_id), lookup) is not None


async def open_org(request: Request, org_id: uuid.UUID) -> uuid.UUID | Response | None:
    """The org named by the request (URL path or query) if it takes events; remembered for
    the spool like any routing."""

    async def lookup() -> uuid.UUID | None:
        return org_id if await org_is_open(context_of(request), org_id) else None

    return await remembered(request, "open_org", str(org_id), lookup)


async def accept(
    request: Request,
    org_id: uuid.UUID,
    source: str,
    external_id: str,
    payload: JsonObject,
) -> Response | None:
    """Count against the org's webhook limit, store once, enqueue after COMMIT; None once the
    event is taken (stored, or spooled while the database is unreachable), else the 503."""
    limiter, key = limiter_of(request), f"{org_id}:{request.url.path}"
    stored = await store_or_spool(
        request,
        org_id,
        source,
        external_id,
        payload,
        request.state.request_id,
        before=lambda: limiter.hit("webhooks", key),
    )
    return stored if isinstance(stored, Response) else None


async def store_or_spool(
    request: Request,
    org_id: uuid.UUID,
    source: str,
    external_id: str | None,
    payload: JsonObject,
    request_id: str | None,
    canonical_request: str | None = None,
    actor: str | None = None,
    before: Callable[[], None] | None = None,
) -> StoredEvent | Response:
    """store_inbound_event; while the database is unreachable, the spool (intake/spool.py)
    takes the event instead (a StoredEvent with the id it will be stored under), or 503.
    With `actor`, a new event is audited under that name (not a spooled one: the spool keeps
    no caller). `before` runs first in the same threadpool hop (a rate-limit hit), so a
    request costs one hand-off to a thread."""
    context = context_of(request)

    def store() -> StoredEvent:
        if before is not None:
            before()
        return store_inbound_event(
            context,
            org_id,
            source,
            external_id,
            payload,
            request_id,
            canonical_request,
            actor=actor,
        )

    try:
        return await run_in_threadpool(store)
    except Exception as exc:
        if not database_unreachable(exc):
            raise
    spool: Spool = request.app.state.spool
    try:
        event_id = await run_in_threadpool(
            spool.put,
            org_id,
            source,
            external_id,
            payload,
            request_id,
            canonical_request,
            context.clock(),
        )
    except SpoolFull:
        warn_throttled(request, "spool full", source, "spool_full")
        return unavailable()
    EVENTS_SPOOLED.labels(source=source).inc()
    if is_door_optout(source, payload):
        # Before the 2xx: workers that still reach the database must not text this org's
        # numbers until the replayer has recorded the STOP (workers/sms_holds.py).
        await run_in_threadpool(hold_sms, org_id)
    return StoredEvent(event_id, created=True, enqueued=False)


async def remembered(
    request: Request,
    kind: str,
    key: str,
    lookup: Callable[[], Awaitable[uuid.UUID | None]],
    use_cache: bool = True,
) -> uuid.UUID | Response | None:
    """An org routing from the database (then cached for the spool, or dropped from it when
    the database no longer has it); while the database is unreachable, the cached routing if
    still fresh, else 503 with Retry-After."""
    cache: RoutingCache = request.app.state.routing_cache
    try:
        org_id = await lookup()
    except Exception as exc:
        if not database_unreachable(exc):
            raise
        cached = cache.recall(kind, key) if use_cache else None
        return cached or unavailable()
    if org_id is None:
        cache.forget(kind, key)
    else:
        cache.remember(kind, key, org_id)
    return org_id
