"""Data layer. Importing it registers every table on Base.metadata."""

from models import channels, ops, tables

__all__ = ["channels", "ops", "tables"]
