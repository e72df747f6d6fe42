"""The one error the chaos run raises for its own failures (not the application's)."""

from __future__ import annotations


class ChaosError(Exception):
    """The run could not be carried out (a server did not start, a setup command failed).

    Messages name commands, ports and ids, never personal data."""
