"""The intake's physical-limit baseline: the irreducible work of one POST /v1/leads.

Per request: read the body, parse the JSON, one AES-256-GCM encryption of it, one INSERT and
COMMIT on PostgreSQL, one LPUSH of the id on Redis, answer 202 {"id"}. No authentication,
validation, limits, logging or framework: what no implementation can skip. It is a raw ASGI
app with asynchronous psycopg and redis clients (no threadpool), served by uvicorn with
exactly the intake's server settings, on the same database and Redis as the real intake.

`python -m bench.minimal_intake --port P [--workers N]` (settings from the environment, as
`leadline intake` reads them).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import psycopg
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg.rows import TupleRow
from starlette.types import Receive, Scope, Send

from bench.bare_asgi import answer, lifespan_loop, serve

TABLE_SQL = """
CREATE TABLE IF NOT EXISTS bench_minimal_events (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    payload_ct bytea NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    created_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT_SQL = "INSERT INTO bench_minimal_events (id, org_id, payload_ct) VALUES (%s, %s, %s)"
POOL_SIZE = 10  # per process; the load generator's 32 connections are spread over them
ORG = uuid.UUID(int=1)


class Resources:
    """Connections opened at start-up: a small pool of PostgreSQL connections and Redis."""

    def __init__(self) -> None:
        from leadline.settings import Settings
        from models.db import sqlalchemy_url

        settings = Settings()
        assert settings.leadline_database_url and settings.leadline_redis_url
        self.dsn = sqlalchemy_url(settings.leadline_database_url).replace(
            "postgresql+psycopg://", "postgresql://"
        )
        self.redis = aioredis.Redis.from_url(settings.leadline_redis_url)
        self.list_key = f"{settings.leadline_redis_namespace}:bench-minimal"
        self.aead = AESGCM(os.urandom(32))
        self.pool: asyncio.Queue[psycopg.AsyncConnection[TupleRow]] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(POOL_SIZE):
            self.pool.put_nowait(await psycopg.AsyncConnection.connect(self.dsn))

    async def close(self) -> None:
        while not self.pool.empty():
            await self.pool.get_nowait().close()
        await self.redis.close()


resources: Resources | None = None


async def read_body(receive: Receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    global resources
    if scope["type"] == "lifespan":
        resources = Resources()
        await lifespan_loop(receive, send, resources.open, resources.close)
        return
    assert resources is not None
    if scope["method"] != "POST":
        await answer(send, 200, b"{}")
        return
    data = json.loads(await read_body(receive))
    event_id = uuid.uuid4()
    nonce = os.urandom(12)
    aad = f"leadline:v1:{ORG}:inbound_events:payload_ct:{event_id}".encode()
    sealed = nonce + resources.aead.encrypt(nonce, json.dumps(data).encode(), aad)
    conn = await resources.pool.get()
    try:
        await conn.execute(INSERT_SQL, (event_id, ORG, sealed))
        await conn.commit()
    finally:
        resources.pool.put_nowait(conn)
    await resources.redis.lpush(resources.list_key, str(event_id))
    await answer(send, 202, b'{"id":"' + str(event_id).encode() + b'"}')


def create_table(database_url: str) -> None:
    from models.db import sqlalchemy_url

    dsn = sqlalchemy_url(database_url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(TABLE_SQL)


def main() -> None:
    serve("bench.minimal_intake:app")


if __name__ == "__main__":
    main()
