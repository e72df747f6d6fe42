"""The worker's physical-limit baseline: the irreducible work of processing one lead event.

Per message (org id, event id, like process_event): one HMAC blind index, then in one
transaction: SELECT a lead by blind index, INSERT the lead row, UPDATE the event to
processed, COMMIT. Plain psycopg on a shared connection pool, on the same broker, middleware
and worker threads as the real actor. Its tables are its own (no RLS, no encryption).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import queue
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import dramatiq
import psycopg
from psycopg.rows import TupleRow

from models.db import sqlalchemy_url

QUEUE = "bench_minimal"
TABLES_SQL = """
CREATE TABLE IF NOT EXISTS bench_min_events (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    processed_at timestamptz
);
CREATE TABLE IF NOT EXISTS bench_min_leads (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    phone_bidx bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS bench_min_leads_bidx ON bench_min_leads (org_id, phone_bidx)
"""
SELECT_SQL = "SELECT id FROM bench_min_leads WHERE org_id = %s AND phone_bidx = %s LIMIT 1"
INSERT_SQL = "INSERT INTO bench_min_leads (id, org_id, phone_bidx) VALUES (%s, %s, %s)"
UPDATE_SQL = (
    "UPDATE bench_min_events SET status = 'processed', processed_at = now() "
    "WHERE id = %s AND status = 'pending'"
)
INDEX_KEY = os.urandom(32)


def dsn(database_url: str) -> str:
    return sqlalchemy_url(database_url).replace("postgresql+psycopg://", "postgresql://")


class ConnectionPool:
    """Connections shared by the worker threads, opened once, kept across drains."""

    def __init__(self, database_url: str) -> None:
        self.dsn = dsn(database_url)
        self._idle: queue.SimpleQueue[psycopg.Connection[TupleRow]] = queue.SimpleQueue()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[TupleRow]]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = psycopg.connect(self.dsn)
        try:
            yield conn
        finally:
            self._idle.put(conn)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def create_tables(database_url: str) -> None:
    with psycopg.connect(dsn(database_url), autocommit=True) as conn:
        conn.execute(TABLES_SQL)


def process_minimal(pool: ConnectionPool, org_id: str, event_id: str) -> None:
    org, event = uuid.UUID(org_id), uuid.UUID(event_id)
    bidx = hmac.new(INDEX_KEY, f"phone:{event}".encode(), hashlib.sha256).digest()[:16]
    with pool.connection() as conn:
        conn.execute(SELECT_SQL, (org, bidx)).fetchone()
        conn.execute(INSERT_SQL, (uuid.uuid4(), org, bidx))
        conn.execute(UPDATE_SQL, (event,))
        conn.commit()


class MinimalActor:
    """The actor and its pool; `pool` may be swapped (the counted run goes through a proxy)."""

    def __init__(self, broker: dramatiq.Broker, database_url: str) -> None:
        self.pool = ConnectionPool(database_url)
        self.actor: dramatiq.Actor[[str, str], None] = dramatiq.Actor(
            lambda org_id, event_id: process_minimal(self.pool, org_id, event_id),
            broker=broker,
            actor_name="bench_minimal",
            queue_name=QUEUE,
            priority=0,
            options={},
        )

    def send_events(self, count: int) -> None:
        """Pending event rows, then one message per event (as the intake would enqueue)."""
        org = uuid.uuid4()
        ids = [uuid.uuid4() for _ in range(count)]
        with self.pool.connection() as conn, conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO bench_min_events (id, org_id) VALUES (%s, %s)",
                [(event_id, org) for event_id in ids],
            )
            conn.commit()
        for event_id in ids:
            self.actor.send(str(org), str(event_id))
