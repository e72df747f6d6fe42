"""Data layer. Importing it registers every table on Base.metadata."""

from models import (
    billing,
    channels,
    imports,
    messaging,
    ops,
    retention,
    routing,
    tables,
    telegram_links,
    webhooks,
)

__all__ = [
    "billing",
    "channels",
    "imports",
    "messaging",
    "ops",
    "retention",
    "routing",
    "tables",
    "telegram_links",
    "webhooks",
]
