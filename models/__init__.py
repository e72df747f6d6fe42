"""Data layer. Importing it registers every table on Base.metadata."""

from models import (
    billing,
    channels,
    connections,
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
    "connections",
    "imports",
    "messaging",
    "ops",
    "retention",
    "routing",
    "tables",
    "telegram_links",
    "webhooks",
]
