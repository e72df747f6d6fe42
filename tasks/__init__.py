"""Actors: thin shells that open a session and call plain functions.

Importing this package registers every actor and every event handler.
"""

from tasks import billing, events, meta, telegram_link

__all__ = ["billing", "events", "meta", "telegram_link"]
