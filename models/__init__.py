"""Data layer. Importing it registers every table on Base.metadata."""

from models import channels, retention, tables

__all__ = ["channels", "retention", "tables"]
