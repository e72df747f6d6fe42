"""Prometheus metrics, defined once so every role increments the same series.

No label ever carries PII: sources, reasons, codes, actor names and outcomes only.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_ACCEPTED = Counter(
    "leadline_events_accepted_total", "Inbound events accepted and stored", ["source"]
)
EVENTS_REJECTED = Counter(
    "leadline_events_rejected_total", "Inbound requests refused", ["source", "reason"]
)
QUEUE_DEPTH = Gauge("leadline_queue_depth", "Messages waiting per queue", ["queue"])
DEAD_LETTERS = Counter("leadline_dead_letters_total", "Messages given up on", ["actor"])
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
