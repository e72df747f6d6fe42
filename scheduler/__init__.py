"""Periodic triggers (see the scheduler issue): sends Dramatiq messages only."""
