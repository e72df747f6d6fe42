"""Outbound webhooks: fan-out from domain events, signed async delivery, sweeper and replay."""
