"""Data layer. Importing it registers every table on Base.metadata."""

from models import channels, messaging, tables

__all__ = ["channels", "messaging", "tables"]
