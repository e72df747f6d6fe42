"""Flat cost: end-to-end throughput with 1,000,000 leads stored, against the same measurement on
an (almost) empty database, in the same run.

The stored leads belong to the organisation the events are for, so every deduplication
lookup searches its full indexes. They are inserted in bulk with generate_series: random
bytes of the sizes real ciphertexts have, random 16-byte blind indexes, then VACUUM ANALYZE.
Target: throughput with the leads stored ≥ 90 % of the empty-database figure.
"""

from __future__ import annotations

import time
import uuid

import psycopg
from sqlalchemy import text

from bench.pipeline import Drainer, PipelineBench, best_of
from bench.setup import BenchEnv, psycopg_url

TARGETS = {"ratio": (">=", 0.90)}
WARMUP_EVENTS = 100
BATCH = 100_000

# Sizes of real ciphertexts: 5-byte header + 12-byte nonce + plaintext + 16-byte tag.
BULK_INSERT = text(
    """
    INSERT INTO leads (id, org_id, name_ct, phone_ct, email_ct, first_message_ct, phone_bidx,
                       email_bidx, source, status, sms_consent, consent_text_ct, consent_at,
                       consent_source, created_at, updated_at)
    SELECT gen_random_uuid(), CAST(:org AS uuid),
           substring(r.b from 1 for 51), substring(r.b from 2 for 45),
           substring(r.b from 3 for 68), substring(r.b from 4 for 105),
           substring(sha256(int8send(r.g)) from 1 for 16),
           substring(sha256(int8send(-r.g - 1)) from 1 for 16),
           'website', 'new', true, substring(r.b from 5 for 76),
           now() - r.g * interval '1 second', 'website',
           now() - r.g * interval '1 second', now() - r.g * interval '1 second'
    FROM (SELECT g, sha512(int8send(g)) || sha512(int8send(g + 1000000000)) AS b
          FROM generate_series(CAST(:start AS bigint), CAST(:stop AS bigint)) AS g) AS r
    """
)


def store_bulk_leads(env: BenchEnv, org_id: uuid.UUID, count: int) -> float:
    """Insert `count` leads for the org in batches; returns seconds taken (with VACUUM)."""
    started = time.perf_counter()
    for start in range(0, count, BATCH):
        stop = min(count, start + BATCH) - 1
        with env.context.db.tenant(org_id) as session:
            session.execute(BULK_INSERT, {"org": str(org_id), "start": start, "stop": stop})
    url = psycopg_url(str(env.settings.leadline_database_url))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE leads")
    return time.perf_counter() - started


def run(env: BenchEnv) -> dict[str, float]:
    events = int(env.option("events", 2000))
    rounds = int(env.option("rounds", 2))
    leads = int(env.option("leads", 1_000_000))
    pipeline = PipelineBench(env, Drainer.install(env), env.make_org())

    pipeline.round(WARMUP_EVENTS)
    empty = best_of(rounds, lambda: pipeline.round(events)[1])
    insert_seconds = store_bulk_leads(env, pipeline.org.id, leads)
    pipeline.round(WARMUP_EVENTS)
    full = best_of(rounds, lambda: pipeline.round(events)[1])
    env.note(
        f"{leads:,} leads stored for the org the events are for; {events} new leads per "
        f"round, best of {rounds}, {pipeline.drainer.threads} worker threads"
    )
    return {
        "empty_events_per_s": empty.per_second,
        "full_events_per_s": full.per_second,
        "ratio": full.per_second / empty.per_second,
        "leads_stored": float(leads),
        "bulk_insert_seconds": insert_seconds,
    }
