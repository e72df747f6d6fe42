"""Actors: thin shells that open a session and call plain functions.

Importing this package registers every actor and every event handler.
"""

from tasks import events, webhooks

__all__ = ["events", "webhooks"]
