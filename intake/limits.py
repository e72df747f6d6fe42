"""Redis-backed rate limits (the `limits` library), keyed under LEADLINE_REDIS_NAMESPACE.

Minimal version for campaign launches; the intake's general limits (auth, API, webhooks)
share this module. A moving window: "3 per minute" means any 60 s span, not a clock minute.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from leadline.settings import Settings


@dataclass(frozen=True)
class LimitDecision:
    allowed: bool
    retry_after: int = 0


class RateLimiter:
    """One limiter per process, sharing the Redis server the broker uses."""

    def __init__(self, redis_url: str, namespace: str) -> None:
        storage = RedisStorage(redis_url, key_prefix=f"{namespace}:limits")
        self._window = MovingWindowRateLimiter(storage)

    def hit(self, item: RateLimitItem, *identifiers: str) -> LimitDecision:
        if self._window.hit(item, *identifiers):
            return LimitDecision(True)
        reset = self._window.get_window_stats(item, *identifiers).reset_time
        return LimitDecision(False, max(1, math.ceil(reset - time.time())))


def campaign_launches(settings: Settings) -> RateLimitItem:
    return RateLimitItemPerMinute(
        settings.leadline_campaign_launches_per_minute, namespace="campaign_launch"
    )


_limiters: dict[tuple[str, str], RateLimiter] = {}
_lock = threading.Lock()


def limiter_for(settings: Settings) -> RateLimiter:
    assert settings.leadline_redis_url is not None
    key = (settings.leadline_redis_url, settings.leadline_redis_namespace)
    with _lock:
        if key not in _limiters:
            _limiters[key] = RateLimiter(*key)
        return _limiters[key]
