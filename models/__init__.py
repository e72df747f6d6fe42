"""Data layer. Importing it registers every table on Base.metadata."""

from models import channels, tables, webhooks

__all__ = ["channels", "tables", "webhooks"]
