"""In-process caches of what hot paths look up on every request or event (API keys, org
routings, org settings, alert recipients, webhook endpoints), invalidated by the database.

Invalidation: every table a cache reads has triggers (migration 0012) that `pg_notify` the
`leadline_cache` channel with the table's name for each committed change, whoever made it
(the CLI, another process, a retention job, a restore). Each process that serves or works
keeps one listening connection (`Invalidations.start`): a notification bumps the generation
of that table, and every cached value read under an older generation is stale from then on,
typically milliseconds after the COMMIT and always within `LISTEN_TIMEOUT` of it while the
listener is connected. Changes made through this process's own scoped sessions also bump the
generations right after their COMMIT (models.db), so a process sees its own writes at once.

Backstops: every value expires after `ttl` seconds; while the listener is not connected
(not started, reconnecting, database away) nothing is served from a cache, and a reconnect
bumps every generation (notifications may have been missed). Values are never negative
lookups: an unknown API key or number always asks the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

import psycopg

from leadline.logging import get_logger

log = get_logger(__name__)
CHANNEL = "leadline_cache"
LISTEN_TIMEOUT = 0.5  # the listener proves its connection alive at least this often
RECONNECT_SECONDS = 0.5
DEFAULT_TTL = 10.0
MAX_ENTRIES = 100_000
K = TypeVar("K")
V = TypeVar("V")

# Tables whose changes invalidate caches (each has the notify triggers of migration 0012).
WATCHED_TABLES = (
    "api_keys",
    "organizations",
    "org_phone_numbers",
    "meta_accounts",
    "org_billing",
    "messaging_settings",
    "alert_numbers",
    "telegram_chats",
    "webhook_endpoints",
)


class Invalidations:
    """Generations per watched table, bumped by notifications and by this process's commits.

    One listener per database URL started (a process normally has one; tests run apps on
    several databases): caches serve only while every listener is connected."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generations = dict.fromkeys(WATCHED_TABLES, 0)
        self._epoch = 0
        self._listeners: dict[str, _Listener] = {}

    @property
    def listening(self) -> bool:
        listeners = list(self._listeners.values())
        return bool(listeners) and all(listener.connected for listener in listeners)

    def generation(self, tables: Iterable[str]) -> int:
        """A number that grows whenever one of `tables` changes (or notices may be lost)."""
        with self._lock:
            return self._epoch + sum(self._generations[table] for table in tables)

    def table_generation(self, table: str) -> int:
        """How often `table` has been seen to change, lost notifications aside: what a
        routing remembered for an outage compares (a reconnect does not make it stale)."""
        with self._lock:
            return self._generations[table]

    def changed(self, tables: Iterable[str]) -> None:
        with self._lock:
            for table in tables:
                if table in self._generations:
                    self._generations[table] += 1

    def lost(self) -> None:
        """Notifications may have been missed: everything cached so far is stale."""
        with self._lock:
            self._epoch += 1

    def start(self, dsn: str) -> None:
        """Listen to the database at `dsn` (once per URL; each start needs a stop)."""
        with self._lock:
            listener = self._listeners.get(dsn)
            if listener is None:
                listener = self._listeners[dsn] = _Listener(self, dsn)
                listener.thread.start()
            listener.users += 1

    def stop(self, dsn: str) -> None:
        with self._lock:
            listener = self._listeners.get(dsn)
            if listener is None:
                return
            listener.users -= 1
            if listener.users > 0:
                return
            del self._listeners[dsn]
        listener.halt()
        self.lost()

    def wait_listening(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.listening:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


class _Listener:
    """A LISTEN connection in a daemon thread, reconnecting until halted."""

    def __init__(self, owner: Invalidations, dsn: str) -> None:
        self.owner, self.dsn, self.users = owner, dsn, 0
        self.connected = False
        self._halt = threading.Event()
        self.thread = threading.Thread(
            target=self._listen_forever, name="cache-invalidations", daemon=True
        )

    def halt(self) -> None:
        self._halt.set()
        self.thread.join(5)

    def _listen_forever(self) -> None:
        while not self._halt.is_set():
            try:
                self._listen()
            except psycopg.Error as exc:
                log.warning("cache invalidations interrupted", error=type(exc).__name__)
            self.connected = False
            self.owner.lost()
            self._halt.wait(RECONNECT_SECONDS)

    def _listen(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.owner.lost()  # whatever was cached before may have missed notifications
            self.connected = True
            while not self._halt.is_set():
                for notice in conn.notifies(timeout=LISTEN_TIMEOUT):
                    self.owner.changed((notice.payload,))
                conn.execute("SELECT 1")  # a dead connection raises here, not silently


invalidations = Invalidations()


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    generation: int
    expires_at: float


class _Missing:
    pass


MISSING = _Missing()


class Cache(Generic[K, V]):
    """Values read from `tables`, valid until one of them changes or `ttl` passes."""

    def __init__(
        self,
        tables: tuple[str, ...],
        ttl: float = DEFAULT_TTL,
        source: Invalidations = invalidations,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        unknown = set(tables) - set(WATCHED_TABLES)
        if unknown:
            raise ValueError(f"no invalidation for tables {sorted(unknown)}")
        self.tables, self.ttl, self.source, self.clock = tables, ttl, source, clock
        self._entries: dict[K, _Entry[V]] = {}

    def token(self) -> int | None:
        """Take before reading the database; None when caching is off (not listening)."""
        return self.source.generation(self.tables) if self.source.listening else None

    def peek(self, key: K) -> V | _Missing:
        if not self.source.listening:
            return MISSING
        entry = self._entries.get(key)
        if entry is None:
            return MISSING
        if entry.expires_at <= self.clock() or entry.generation != self.token():
            self._entries.pop(key, None)
            return MISSING
        return entry.value

    def store(self, key: K, value: V, token: int | None) -> None:
        """Keep a value read after `token` was taken (a change since then keeps it stale)."""
        if token is None:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = _Entry(value, token, self.clock() + self.ttl)

    def get(self, key: K, load: Callable[[], V]) -> V:
        """The cached value, or `load()` (then cached)."""
        value = self.peek(key)
        if not isinstance(value, _Missing):
            return value
        token = self.token()
        loaded = load()
        self.store(key, loaded, token)
        return loaded
