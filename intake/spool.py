"""The spool for database outages: verified events wait on local disk until PostgreSQL is back.

While PostgreSQL is unreachable, a verified event whose org the intake learnt from the
database (RoutingCache: API keys in the last `LEADLINE_SPOOL_CACHE_SECONDS`; numbers, Stripe
customers, Meta accounts, Telegram and status-callback orgs in the last
`LEADLINE_SPOOL_PROVIDER_ROUTING_SECONDS`) is written to a SQLite
file (WAL, synchronous=FULL: on disk before the 2xx), its payload sealed with AES-256-GCM
under a key derived (HKDF) from the master key, bound to its org, source, external id and
event id. The replayer first records every spooled opt-out (so a STOP holds before any event
spooled ahead of it is stored and acted on), then stores each spooled event through
store_inbound_event (dedup by external id or event id, STOP at the door, the time it really
arrived), then deletes it, so an event is stored exactly once however often a replay is
interrupted. Unknown orgs and a full spool answer 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from intake.inbox import is_door_optout, record_door_optout, store_inbound_event
from intake.responses import error_response
from leadline.jsondata import JsonObject
from leadline.logging import get_logger
from leadline.settings import Settings
from models.cache import invalidations
from models.crypto import Keyring
from tasks.after_commit import AfterCommit
from tasks.context import TaskContext
from workers.sms_holds import hold_sms, release_sms

log = get_logger("leadline.intake.spool")
SPOOL_FILE = "spool.sqlite3"
KEY_INFO = b"leadline spool v1"
RETRY_AFTER_SECONDS = 5
REPLAY_INTERVAL_SECONDS = 1.0
# SQLSTATE classes that mean "no usable server": connection exceptions, operator intervention.
UNREACHABLE_SQLSTATES = ("08", "57P")
# The table each kind of routing is read from (its changes are notified: models/cache.py).
ROUTING_TABLES = {
    "api_key": "api_keys",
    "number": "org_phone_numbers",
    "stripe_customer": "org_billing",
    "meta_accounts": "meta_accounts",
    "open_org": "organizations",
}


def database_unreachable(exc: BaseException) -> bool:
    """True for errors that say PostgreSQL cannot be reached, not for a refused statement."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is None:
        # psycopg gives connection failures (refused, reset, server gone) no SQLSTATE.
        return isinstance(exc.orig, psycopg.OperationalError | psycopg.InterfaceError)
    return str(sqlstate).startswith(UNREACHABLE_SQLSTATES)


def unavailable() -> Response:
    response = error_response(503, "temporarily unavailable")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@dataclass
class RoutingCache:
    """Org routings learnt from the database, for the spool to route events while the
    database is unreachable (read only then: normal requests ask the database or the caches
    invalidated by it, models/cache.py).

    An API key is usable for `key_ttl` seconds after it was last found, a provider routing
    (number, Stripe customer, Meta account, an org open to Telegram) for `provider_ttl`, and
    either only while its table has not changed since (a change notified while the database
    was up, or a lookup that no longer finds it, drops it). A key's TTL is short because a
    revocation whose notice this process missed must still win soon; a provider's is long
    because a quiet org's number must still route a STOP that arrives during an outage.
    Neither can be revoked during the outage itself: that would need the database."""

    key_ttl: float
    provider_ttl: float
    generation: Callable[[str], int] = invalidations.table_generation
    clock: Callable[[], float] = time.monotonic
    entries: dict[tuple[str, str], tuple[uuid.UUID, float, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def remember(self, kind: str, key: str, org_id: uuid.UUID) -> None:
        now = self.clock()
        ttl = self.key_ttl if kind == "api_key" else self.provider_ttl
        entry = (org_id, now + ttl, self.generation(ROUTING_TABLES[kind]))
        with self.lock:
            if len(self.entries) > 100_000:
                self.entries = {k: v for k, v in self.entries.items() if v[1] > now}
            self.entries[(kind, key)] = entry

    def forget(self, kind: str, key: str) -> None:
        with self.lock:
            self.entries.pop((kind, key), None)

    def recall(self, kind: str, key: str) -> uuid.UUID | None:
        with self.lock:
            entry = self.entries.get((kind, key))
        if entry is None or entry[1] <= self.clock():
            return None
        org_id, _, generation = entry
        return org_id if generation == self.generation(ROUTING_TABLES[kind]) else None


@dataclass(frozen=True)
class SpooledEvent:
    row: int
    event_id: uuid.UUID
    org_id: uuid.UUID
    source: str
    external_id: str | None
    payload: JsonObject
    request_id: str | None
    canonical_request: str | None
    received_at: datetime | None = None  # None: spooled by a version that did not keep it


class SpoolFull(Exception):
    """The spool holds its maximum number of events."""


def spool_path(settings: Settings) -> Path:
    if settings.leadline_spool_path:
        return Path(settings.leadline_spool_path)
    return Path(settings.leadline_state_dir) / SPOOL_FILE


def spool_key(keyring: Keyring, key_id: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_INFO)
    return hkdf.derive(keyring.key(key_id))


def event_aad(
    org_id: uuid.UUID, source: str, external_id: str | None, event_id: uuid.UUID
) -> bytes:
    return json.dumps(["spool", str(org_id), source, external_id, str(event_id)]).encode()


SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    org_id TEXT NOT NULL,
    source TEXT NOT NULL,
    external_id TEXT,
    key_id TEXT NOT NULL,
    sealed BLOB NOT NULL
)
"""


class Spool:
    """A durable FIFO of sealed events in one SQLite file (one connection, serialised)."""

    def __init__(self, path: Path, keyring: Keyring, max_events: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.keyring = keyring
        self.max_events = max_events
        self.lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        """Opened on first use, so an app that never spools nor replays holds no file."""
        if self._conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(SCHEMA)
            os.chmod(self.path, 0o600)
            self._conn = conn
        return self._conn

    @classmethod
    def from_context(cls, context: TaskContext) -> Spool:
        settings = context.settings
        return cls(spool_path(settings), context.keyring, settings.leadline_spool_max_events)

    def put(
        self,
        org_id: uuid.UUID,
        source: str,
        external_id: str | None,
        payload: JsonObject,
        request_id: str | None = None,
        canonical_request: str | None = None,
        received_at: datetime | None = None,
    ) -> uuid.UUID:
        """Seal and store one event, on disk when this returns; SpoolFull when at the cap.

        `received_at` (default: now) is stored with it, as the event's arrival time."""
        event_id = uuid.uuid4()
        key_id = self.keyring.primary_id
        arrived = (received_at or datetime.now(UTC)).isoformat()
        body = json.dumps(
            {
                "payload": payload,
                "request_id": request_id,
                "canonical": canonical_request,
                "received_at": arrived,
            }
        ).encode()
        nonce = os.urandom(12)
        sealed = nonce + AESGCM(spool_key(self.keyring, key_id)).encrypt(
            nonce, body, event_aad(org_id, source, external_id, event_id)
        )
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                (count,) = self.conn.execute("SELECT count(*) FROM events").fetchone()
                if count >= self.max_events:
                    raise SpoolFull()
                self.conn.execute(
                    "INSERT INTO events (event_id, org_id, source, external_id, key_id, sealed)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (str(event_id), str(org_id), source, external_id, key_id, sealed),
                )
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        return event_id

    def count(self) -> int:
        with self.lock:
            (count,) = self.conn.execute("SELECT count(*) FROM events").fetchone()
        return int(count)

    def oldest(
        self, after: int = 0, limit: int = 100, source: str | None = None
    ) -> list[SpooledEvent]:
        """Up to `limit` events (of `source`, or any), oldest first, spooled after row `after`."""
        with self.lock:
            rows = self.conn.execute(
                "SELECT row, event_id, org_id, source, external_id, key_id, sealed"
                " FROM events WHERE row > ? AND (? IS NULL OR source = ?) ORDER BY row LIMIT ?",
                (after, source, source, limit),
            ).fetchall()
        return [self.unseal(*row) for row in rows]

    def unseal(
        self,
        row: int,
        event_id: str,
        org_id: str,
        source: str,
        external_id: str | None,
        key_id: str,
        sealed: bytes,
    ) -> SpooledEvent:
        event, org = uuid.UUID(event_id), uuid.UUID(org_id)
        body = AESGCM(spool_key(self.keyring, key_id)).decrypt(
            sealed[:12], sealed[12:], event_aad(org, source, external_id, event)
        )
        data = json.loads(body)
        arrived = data.get("received_at")
        return SpooledEvent(
            row, event, org, source, external_id, data["payload"], data["request_id"],
            data["canonical"], datetime.fromisoformat(arrived) if arrived else None,
        )  # fmt: skip

    def remove(self, row: int) -> None:
        with self.lock:
            self.conn.execute("DELETE FROM events WHERE row = ?", (row,))

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


# Sources whose messages may opt out (intake/inbox.py, is_door_optout)
MESSAGE_SOURCES = ("twilio_sms", "meta")


def spooled_texts(spool: Spool) -> list[SpooledEvent]:
    """Every spooled inbound message (SMS, WhatsApp, Messenger, Instagram), oldest first."""
    texts: list[SpooledEvent] = []
    for source in MESSAGE_SOURCES:
        found: list[SpooledEvent] = []
        while batch := spool.oldest(after=found[-1].row if found else 0, source=source):
            found += batch
        texts += found
    return sorted(texts, key=lambda text: text.row)


def record_spooled_optouts(
    context: TaskContext, org_id: uuid.UUID, texts: Sequence[SpooledEvent]
) -> int:
    """One org's spooled opt-outs as suppressions, each at the time it arrived; how many."""
    after_commit = AfterCommit()
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        now = context.clock()
        recorded = sum(
            record_door_optout(
                session, cipher, text.source, text.payload, after_commit, now, text.received_at
            )
            for text in texts
        )
    after_commit.flush()
    return recorded


def apply_spooled_optouts(context: TaskContext, events: Sequence[SpooledEvent]) -> bool:
    """The opt-outs among spooled inbound messages `events`, before any spooled event is stored:
    events spooled ahead of a STOP would otherwise be acted on (an auto-reply, a HELP reply)
    before the STOP is. False: the database is still unreachable. Opt-outs go in at their
    arrival times, so a spooled START after a STOP still lifts it, and one before it does not
    (tasks/optouts.py)."""
    optouts: dict[uuid.UUID, list[SpooledEvent]] = defaultdict(list)
    for event in events:
        if is_door_optout(event.source, event.payload):
            optouts[event.org_id].append(event)
    for org_id in optouts:
        hold_sms(org_id)  # renewed on every pass while the opt-outs wait
    for org_id, org_optouts in optouts.items():
        try:
            recorded = record_spooled_optouts(context, org_id, org_optouts)
        except Exception as exc:
            if database_unreachable(exc):
                return False
            log.error("spooled opt-outs not recorded", error=type(exc).__name__)
            continue
        release_sms(org_id)
        log.info("spooled opt-outs recorded first", org_id=str(org_id), count=recorded)
    return True


def store_spooled(context: TaskContext, event: SpooledEvent) -> None:
    stored = store_inbound_event(
        context,
        event.org_id,
        event.source,
        event.external_id,
        event.payload,
        event.request_id,
        event.canonical_request,
        event_id=event.event_id,
        received_at=event.received_at,
    )
    if stored.same_request:
        return
    # Its key was first used with another body. Live, that is a 422; spooled, the intake could
    # not tell and answered 2xx with this event's id, so the event is kept under that id alone.
    log.warning("spooled event kept without its reused key", event_id=str(event.event_id))
    store_inbound_event(
        context,
        event.org_id,
        event.source,
        None,
        event.payload,
        event.request_id,
        event_id=event.event_id,
        received_at=event.received_at,
    )


def replay(context: TaskContext, spool: Spool) -> int:
    """Store every spooled event through the normal path, oldest first; the number stored.

    Spooled opt-outs are recorded first (apply_spooled_optouts). Stops at the first sign that
    the database is still unreachable (the next tick retries). An event refused for another
    reason stays spooled, logged, and is retried on the next tick; it does not hold back the
    events behind it."""
    if not apply_spooled_optouts(context, spooled_texts(spool)):
        return 0
    moved, last = 0, 0
    while batch := spool.oldest(after=last):
        for event in batch:
            last = event.row
            try:
                store_spooled(context, event)
            except Exception as exc:
                if database_unreachable(exc):
                    return moved
                log.error("spooled event not replayed", error=type(exc).__name__)
                continue
            spool.remove(event.row)
            moved += 1
    if moved:
        log.info("spool replayed", events=moved)
    return moved


async def replay_forever(context: TaskContext, spool: Spool) -> None:
    """The intake's replayer: every second, while the spool holds anything."""
    while True:
        try:
            if await run_in_threadpool(spool.count):
                await run_in_threadpool(replay, context, spool)
        except Exception as exc:  # the replayer must outlive any one failure
            log.error("spool replay failed", error=type(exc).__name__)
        await asyncio.sleep(REPLAY_INTERVAL_SECONDS)
