"""Actors: thin shells that open a session and call plain functions.

Importing this package declares every actor (workers/runtime.py binds them to the broker);
who handles which inbound source and who hears which event is tasks/wiring.py.
"""

from tasks import campaigns, jobs, sending, wiring
from tasks.imports import batches as imports
from tasks.webhooks import delivery

__all__ = ["campaigns", "delivery", "imports", "jobs", "sending", "wiring"]
