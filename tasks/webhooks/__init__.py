"""Outbound webhooks: fan-out from domain events, signed async delivery, sweeper and replay."""

from tasks.webhooks import delivery, fanout, operations

__all__ = ["delivery", "fanout", "operations"]
