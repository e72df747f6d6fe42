"""Actors: thin shells that open a session and call plain functions.

Importing this package registers every actor and every event handler.
"""

from tasks import (
    alerts,
    billing,
    campaigns,
    events,
    inbound_sms,
    meta,
    reconcile,
    retention,
    sending,
    telegram_link,
    webhooks,
)

__all__ = [
    "alerts",
    "billing",
    "campaigns",
    "events",
    "inbound_sms",
    "meta",
    "reconcile",
    "retention",
    "sending",
    "telegram_link",
    "webhooks",
]
