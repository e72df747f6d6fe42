"""Actors: thin shells that open a session and call plain functions.

Importing this package registers every actor and every event handler.
"""

from tasks import alerts, campaigns, events, inbound_sms, sending

__all__ = ["alerts", "campaigns", "events", "inbound_sms", "sending"]
