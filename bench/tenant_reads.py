"""Tenant API reads: GET /v1/leads pages of 50 from an organisation holding 100,000 leads,
at 20 requests/s (open loop, latency from the moment each request was due), against a real
`leadline intake` process; and the same page's cost relative to one POST /v1/leads on the
same server at the same rate (server CPU per request, and p50).

The leads are real: encrypted under the org's key with blind indexes, as the worker stores
them, inserted in bulk (Core, batches of 5,000), then VACUUM ANALYZE. Requests cycle through
the first page and pages starting at 20 random depths (cursors taken from stored rows), so
the figure is not the first page's cache alone. Target (issue 13): p99 ≤ 50 ms.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit

import psycopg
from sqlalchemy import insert, select

from bench.intake import server
from bench.loadgen import LoadResult, paced_wires
from bench.pipeline import lead_body
from bench.setup import BenchEnv, psycopg_url, wait_until_serving
from models.crypto import OrgCipher

TARGETS = {"list_p99_ms": ("<=", 50.0)}
LEADS = 100_000
BATCH = 5_000
PAGE = 50
RATE = 20.0
DEPTHS = 20
CONNECTIONS = 4


def lead_rows(
    cipher: OrgCipher, org_id: uuid.UUID, first: int, count: int, now: datetime
) -> list[dict[str, object]]:
    from models.leads import TABLE
    from models.normalize import normalize_email

    rows = []
    for serial in range(first, first + count):
        body, lead_id = lead_body(serial), uuid.uuid4()
        phone = f"+1415{2_000_000 + serial:07d}"

        def seal(column: str, value: str, lead_id: uuid.UUID = lead_id) -> bytes:
            return cipher.encrypt(value.encode(), TABLE, column, lead_id)

        rows.append(
            {
                "id": lead_id,
                "org_id": org_id,
                "name_ct": seal("name_ct", body["name"]),
                "phone_ct": seal("phone_ct", phone),
                "email_ct": seal("email_ct", body["email"]),
                "first_message_ct": seal("first_message_ct", body["message"]),
                "phone_bidx": cipher.blind_index("phone", phone),
                "email_bidx": cipher.blind_index("email", normalize_email(body["email"])),
                "source": "website",
                "status": "new",
                "sms_consent": True,
                "consent_at": now,
                "created_at": now - timedelta(seconds=serial),
                "updated_at": now,
            }
        )
    return rows


def store_leads(env: BenchEnv, org_id: uuid.UUID, count: int) -> float:
    from models.tables import Lead

    started, now = time.perf_counter(), datetime.now(UTC)
    for first in range(0, count, BATCH):
        with env.context.db.tenant(org_id) as session:
            cipher = env.context.keys.cipher(session, org_id)
            rows = lead_rows(cipher, org_id, first, min(BATCH, count - first), now)
            session.execute(insert(Lead), rows)
    with psycopg.connect(
        psycopg_url(str(env.settings.leadline_database_url)), autocommit=True
    ) as conn:
        conn.execute("VACUUM ANALYZE leads")
    return time.perf_counter() - started


def page_cursors(env: BenchEnv, org_id: uuid.UUID) -> list[str | None]:
    """The first page, then pages after `DEPTHS` random stored rows."""
    from intake.pagination import encode_cursor
    from models.pagination import Position
    from models.tables import Lead

    chosen: list[str | None] = [None]
    with env.context.db.tenant(org_id) as session:
        for offset in random.Random(13).sample(range(LEADS - PAGE), DEPTHS):
            row = session.execute(
                select(Lead.created_at, Lead.id)
                .order_by(Lead.created_at.desc(), Lead.id.desc())
                .offset(offset)
                .limit(1)
            ).one()
            chosen.append(encode_cursor(Position(row.created_at, row.id)))
    return chosen


def get_wire(base: str, headers: dict[str, str], cursor: str | None) -> bytes:
    parts = urlsplit(base)
    query = urlencode({"limit": PAGE, **({"cursor": cursor} if cursor else {})})
    head = [f"GET /v1/leads?{query} HTTP/1.1", f"Host: {parts.netloc}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def post_wire(base: str, headers: dict[str, str], serial: int) -> bytes:
    parts = urlsplit(base)
    body = json.dumps(lead_body(LEADS + serial)).encode()
    head = ["POST /v1/leads HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def measured(pid: int, base: str, wires: list[bytes]) -> tuple[LoadResult, float]:
    from bench.setup import cpu_seconds

    before = cpu_seconds(pid)
    result = asyncio.run(paced_wires(base, wires, RATE, CONNECTIONS))
    cpu_ms = (cpu_seconds(pid) - before) * 1000 / max(1, result.ok)
    if result.errors:
        raise RuntimeError(f"{result.errors} requests failed of {result.ok + result.errors}")
    return result, cpu_ms


def run(env: BenchEnv) -> dict[str, float]:
    duration = float(env.option("duration", 10.0))
    count = max(20, int(RATE * duration))
    org = env.make_org()
    insert_seconds = store_leads(env, org.id, LEADS)
    cursors = page_cursors(env, org.id)
    command = [sys.executable, "-m", "leadline", "intake", "--workers", "1"]
    with server(env, command, "tenant-reads", "/healthz") as target:
        wait_until_serving(target.base + "/healthz")
        reads = [get_wire(target.base, org.auth, cursors[i % len(cursors)]) for i in range(count)]
        writes = [post_wire(target.base, org.auth, i) for i in range(count)]
        asyncio.run(
            paced_wires(target.base, reads[:20] + writes[:20], RATE, CONNECTIONS)
        )  # warm-up
        listing, list_cpu = measured(target.pid, target.base, reads)
        posting, post_cpu = measured(target.pid, target.base, writes)
    env.note(
        f"{LEADS:,} encrypted leads (bulk insert {insert_seconds:.1f} s); {count} GET "
        f"/v1/leads?limit={PAGE} at {RATE:g}/s (first page and {DEPTHS} random depths), then "
        f"{count} POST /v1/leads at {RATE:g}/s, {CONNECTIONS} keep-alive connections"
    )
    return {
        "list_p50_ms": listing.p50_ms,
        "list_p99_ms": listing.p99_ms,
        "post_p50_ms": posting.p50_ms,
        "post_p99_ms": posting.p99_ms,
        "list_cpu_ms_per_request": list_cpu,
        "post_cpu_ms_per_request": post_cpu,
        "list_cost_vs_post_cpu": list_cpu / post_cpu,
        "list_cost_vs_post_p50": listing.p50_ms / posting.p50_ms,
    }
