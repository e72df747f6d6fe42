"""Prometheus metrics, defined once so every role increments the same series.

No label ever carries PII: sources, reasons, codes, actor names and outcomes only.

Who moves what: EVENTS_ACCEPTED / EVENTS_DEDUPLICATED by intake.inbox.store_inbound_event;
EVENTS_SPOOLED by intake.hooks.store_or_spool;
EVENTS_REJECTED once per refused request by intake.metrics (from the response status, so
routes do not count it themselves); QUEUE_* and DEAD_LETTERS_OPEN are read from Redis and
Postgres when /metrics is scraped; DEAD_LETTERS and ACTOR_DURATION by worker middleware
(exported by each worker process on its own port, see docs/operations.md).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_ACCEPTED = Counter(
    "leadline_events_accepted_total", "Inbound events accepted and stored", ["source"]
)
EVENTS_REJECTED = Counter(
    "leadline_events_rejected_total", "Inbound requests refused", ["source", "reason"]
)
EVENTS_DEDUPLICATED = Counter(
    "leadline_events_deduplicated_total", "Inbound events already stored (replays)", ["source"]
)
EVENTS_SPOOLED = Counter(
    "leadline_events_spooled_total",
    "Verified events spooled on local disk while the database was unreachable",
    ["source"],
)
QUEUE_DEPTH = Gauge("leadline_queue_depth", "Messages waiting per queue", ["queue"])
QUEUE_DELAYED = Gauge("leadline_queue_delayed", "Messages waiting for a retry per queue", ["queue"])
QUEUE_IN_FLIGHT = Gauge("leadline_queue_in_flight", "Messages held by workers", ["queue"])
DEAD_LETTERS = Counter("leadline_dead_letters_total", "Messages given up on", ["actor"])
DEAD_LETTERS_OPEN = Gauge(
    "leadline_dead_letters_open", "Dead letters waiting for an operator", ["queue"]
)
ACTOR_DURATION = Histogram(
    "leadline_actor_duration_seconds", "Time to process one message", ["actor", "outcome"]
)
PROVIDER_ERRORS = Counter(
    "leadline_provider_errors_total", "Errors answered by providers", ["provider", "code"]
)
WEBHOOK_ATTEMPTS = Counter(
    "leadline_webhook_attempts_total", "Outbound webhook attempts", ["outcome"]
)
MESSAGES_SENT = Counter(
    "leadline_messages_total", "Outbound SMS/Telegram messages by final state", ["channel", "state"]
)
