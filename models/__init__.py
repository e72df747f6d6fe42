"""Data layer. Importing it registers every table on Base.metadata."""

from models import (
    billing,
    channels,
    intake,
    messaging,
    ops,
    retention,
    tables,
    telegram_links,
    webhooks,
)

__all__ = [
    "billing",
    "channels",
    "intake",
    "messaging",
    "ops",
    "retention",
    "tables",
    "telegram_links",
    "webhooks",
]
