"""The in-process cache: a value is served only while the invalidation listener is
connected, until one of its tables changes or its TTL passes, and a value read before a
change is never kept as fresh."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from models.cache import MISSING, Cache, Invalidations

pytestmark = pytest.mark.unit


class Listening(Invalidations):
    """Invalidations whose listener counts as connected, without a database."""

    def __init__(self) -> None:
        super().__init__()
        self.connected = True

    @property
    def listening(self) -> bool:
        return self.connected


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cache_on(
    source: Invalidations, clock: Clock, tables: Iterable[str] = ("api_keys",)
) -> Cache[str, int]:
    return Cache(tuple(tables), ttl=10.0, source=source, clock=clock)


def test_a_stored_value_is_served_until_its_table_changes() -> None:
    source, clock = Listening(), Clock()
    cache = cache_on(source, clock)
    cache.store("k", 1, cache.token())
    assert cache.peek("k") == 1
    source.changed(["organizations"])  # another table: still fresh
    assert cache.peek("k") == 1
    source.changed(["api_keys"])
    assert cache.peek("k") is MISSING


def test_a_value_read_before_a_change_is_stale_at_once() -> None:
    source, clock = Listening(), Clock()
    cache = cache_on(source, clock)
    token = cache.token()
    source.changed(["api_keys"])  # committed while the value was being read
    cache.store("k", 1, token)
    assert cache.peek("k") is MISSING


def test_values_expire_after_the_ttl() -> None:
    source, clock = Listening(), Clock()
    cache = cache_on(source, clock)
    cache.store("k", 1, cache.token())
    clock.now = 9.9
    assert cache.peek("k") == 1
    clock.now = 10.0
    assert cache.peek("k") is MISSING


def test_nothing_is_served_or_kept_while_not_listening() -> None:
    source, clock = Listening(), Clock()
    cache = cache_on(source, clock)
    cache.store("k", 1, cache.token())
    source.connected = False
    assert cache.peek("k") is MISSING
    assert cache.token() is None
    loads = []
    assert cache.get("j", lambda: loads.append(1) or 2) == 2
    assert cache.get("j", lambda: loads.append(1) or 2) == 2
    assert len(loads) == 2


def test_lost_notifications_make_everything_stale() -> None:
    source, clock = Listening(), Clock()
    cache = cache_on(source, clock)
    cache.store("k", 1, cache.token())
    source.lost()
    assert cache.peek("k") is MISSING


def test_a_cache_must_read_watched_tables_only() -> None:
    with pytest.raises(ValueError):
        Cache(("leads",))
