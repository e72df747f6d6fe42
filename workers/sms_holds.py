"""Holding an organisation's SMS while an intake's spool holds an opt-out for it.

While an intake cannot reach PostgreSQL, a STOP it answered 2xx waits in its spool
(intake/spool.py), and a worker that can reach the database does not see it: a message
queued before the outage (or a campaign's next one) would go out. So, before answering, the
intake marks the org in Redis; workers do not call the provider for the org's SMS while the
mark stands (tasks/sending.py); the replayer removes it once the spooled opt-outs are
suppressions. The mark is an org id only, and it expires after HOLD_SECONDS unless the
replayer renews it (every second while the opt-out waits), so a lost intake host holds an
org for a minute at most.

Redis unreachable: the intake cannot mark (it logs it) and workers find no mark.
"""

from __future__ import annotations

import uuid

import dramatiq
import redis

from leadline.logging import get_logger

log = get_logger(__name__)
HOLD_SECONDS = 60


def _redis() -> tuple[redis.Redis[bytes], str] | None:
    broker = dramatiq.get_broker()
    client = getattr(broker, "client", None)
    namespace = getattr(broker, "namespace", None)
    if not isinstance(client, redis.Redis) or not isinstance(namespace, str):
        return None
    return client, namespace


def hold_key(namespace: str, org_id: uuid.UUID) -> str:
    return f"{namespace}:sms-hold:{org_id}"


def hold_sms(org_id: uuid.UUID) -> bool:
    """Mark (or renew) the org as held; False if Redis could not be told."""
    found = _redis()
    if found is None:
        return False
    client, namespace = found
    try:
        client.set(hold_key(namespace, org_id), "1", ex=HOLD_SECONDS)
    except redis.RedisError as exc:
        log.warning("sms hold not recorded", org_id=str(org_id), error=type(exc).__name__)
        return False
    return True


def release_sms(org_id: uuid.UUID) -> None:
    found = _redis()
    if found is None:
        return
    client, namespace = found
    try:
        client.delete(hold_key(namespace, org_id))
    except redis.RedisError as exc:  # the mark expires on its own
        log.warning("sms hold not released", org_id=str(org_id), error=type(exc).__name__)


def sms_held(org_id: uuid.UUID) -> bool:
    """True while an intake holds the org's SMS; False when Redis cannot say."""
    found = _redis()
    if found is None:
        return False
    client, namespace = found
    try:
        return bool(client.exists(hold_key(namespace, org_id)))
    except redis.RedisError:
        return False
