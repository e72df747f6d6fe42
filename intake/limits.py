"""Rate limits in Redis (the `limits` library), shared by every intake process.

Named limits come from the settings: `auth_failures` (per route class and client address),
`api` (tenant API writes, per principal or signing org), `api_reads` (tenant API reads, per
principal), `webhooks` (per org and route), `campaigns` (per org).
Routes call `hit(request, name, key)`; an exhausted limit raises RateLimitExceeded, which the
app answers with 429 and Retry-After. If Redis cannot be reached the limiter lets requests
through (the intake keeps accepting, as it does when the broker is down) and logs a warning.

Failed authentication is counted per route class (API keys, ops login, each provider, signed
leads) and per client address (intake.middleware.ClientAddressMiddleware), only ever after the
credential was checked: a request with a valid key or signature is never refused for other
requests' failures, so bad API keys from an address cannot fail a provider's deliveries.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable
from typing import Literal

from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from leadline.errors import LeadlineError
from leadline.logging import get_logger
from leadline.settings import Settings

log = get_logger(__name__)
LIMIT_SETTINGS = {
    "auth_failures": "leadline_limit_auth_failures",
    "api": "leadline_limit_api",
    "api_reads": "leadline_limit_api_reads",
    "webhooks": "leadline_limit_webhooks",
    "campaigns": "leadline_limit_campaigns",
}


# Route classes whose failed authentications are counted apart: a flood of bad API keys
# never exhausts the budget of the Twilio route, nor wrong ops tokens that of Stripe.
FailureClass = Literal[
    "api_key", "ops_login", "twilio", "stripe", "telegram", "meta", "postmark", "signed_leads"
]


class RateLimitExceeded(LeadlineError):
    """Too many requests for one limit and key; retry after `retry_after` seconds."""

    def __init__(self, limit_name: str, retry_after: int) -> None:
        super().__init__(f"rate limit {limit_name!r} exceeded")
        self.limit_name = limit_name
        self.retry_after = retry_after


def limits_storage_uri(redis_url: str) -> str:
    """`limits` names the unix-socket scheme `redis+unix://`; redis-py calls it `unix://`."""
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url[len("unix://") :]
    return redis_url


class RateLimiter:
    """Moving-window limits keyed by name and caller, under the Redis namespace."""

    def __init__(self, redis_url: str, namespace: str, items: dict[str, RateLimitItem]) -> None:
        storage = RedisStorage(
            limits_storage_uri(redis_url),
            key_prefix=f"{namespace}:limits",
            wrap_exceptions=True,
            socket_connect_timeout=1,
            socket_timeout=1,
        )
        self.strategy = MovingWindowRateLimiter(storage)
        self.items = items

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        assert settings.leadline_redis_url is not None
        items = {name: parse(getattr(settings, field)) for name, field in LIMIT_SETTINGS.items()}
        return cls(settings.leadline_redis_url, settings.leadline_redis_namespace, items)

    def hit(self, name: str, key: str) -> None:
        """Count one request; raise RateLimitExceeded if the limit was already used up."""
        self._enforce(self.strategy.hit, name, key)

    def check(self, name: str, key: str) -> None:
        """Raise RateLimitExceeded if the limit is used up, without counting a request."""
        self._enforce(self.strategy.test, name, key)

    def _enforce(
        self, allows: Callable[[RateLimitItem, str, str], bool], name: str, key: str
    ) -> None:
        # Redis down: let the request through (and say so) rather than refuse everyone.
        item = self.items[name]
        try:
            allowed = allows(item, name, key)
        except StorageError as exc:
            log.warning("rate limiter unavailable", limit=name, error=type(exc).__name__)
            return
        if not allowed:
            raise RateLimitExceeded(name, self.retry_after(item, name, key))

    def retry_after(self, item: RateLimitItem, name: str, key: str) -> int:
        try:
            reset_at = self.strategy.get_window_stats(item, name, key).reset_time
        except StorageError:
            return item.get_expiry()
        return max(1, math.ceil(reset_at - time.time()))


def limiter_of(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.limiter
    return limiter


# The limiter talks to Redis synchronously: run it off the event loop, or one slow round trip
# would stall every request this process is serving.


async def hit(request: Request, limit_name: str, key: str) -> None:
    """Count a request against `limit_name` for `key`; raises RateLimitExceeded (→ 429)."""
    await run_in_threadpool(limiter_of(request).hit, limit_name, key)


def client_ip(request: Request) -> str:
    """The client address ClientAddressMiddleware settled on (proxies' hops resolved)."""
    return request.client.host if request.client else "unknown"


async def count_auth_failure(request: Request, failure_class: FailureClass) -> None:
    """Count one failed authentication of `failure_class` from the client's address.

    Raises RateLimitExceeded (→ 429 with Retry-After) once that address has used up its
    failures for that class; until then the caller answers its own 401 or 403."""
    key = f"{failure_class}:{address_bucket(client_ip(request))}"
    await run_in_threadpool(limiter_of(request).hit, "auth_failures", key)


def address_bucket(address: str) -> str:
    """What failures are counted by: an IPv4 address, or an IPv6 client's /64 (one site's
    allocation), or else one client could dodge its count by rotating through 2^64 addresses."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.ip_network((parsed, 64), strict=False))
    return str(parsed)
