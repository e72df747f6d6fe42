"""Periodic triggers: sends Dramatiq messages only; the work happens in the actors."""
