"""The one error the cluster run raises for its own failures (not the application's)."""

from __future__ import annotations


class ClusterError(Exception):
    """The run could not be carried out (a namespace could not be made, a server did not
    start, a URL points outside the run's hosts). Messages name commands, hosts and ports,
    never personal data."""
