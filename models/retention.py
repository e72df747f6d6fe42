"""Retention bookkeeping: scheduled job runs, backups, erasure requests and tombstones.

Also the generic view of the schema that retention works from: every table with an `org_id`
column is tenant data, every table with a `lead_id` column holds rows tied to one lead.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    exists,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, Session, mapped_column

from leadline.jsondata import JsonObject
from models.base import Base, now_column, org_fk, uuid_pk
from models.tables import InboundEvent

KEY_TABLE = "org_keys"


class JobRun(Base):
    """One run of a scheduled job for one slot; the unique key makes a double firing a no-op."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job", "scheduled_for", name="uq_job_runs_slot"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    job: Mapped[str] = mapped_column(String(64), nullable=False)
    scheduled_for: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="running")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    started_at: Mapped[datetime] = now_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    details: Mapped[JsonObject] = mapped_column(JSONB, nullable=False, default=dict)


class Backup(Base):
    """An encrypted per-organisation bundle on disk (see tasks.backups for the format)."""

    __tablename__ = "backups"
    __table_args__ = (
        Index("ix_backups_expiry", "expires_at", postgresql_where=text("status = 'available'")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    path: Mapped[str] = mapped_column(String(500), nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    key_version: Mapped[int] = mapped_column(Integer, nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    row_count: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="available")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ErasureRequest(Base):
    """A person's request to be forgotten; `lead_id` names the lead, not a row tied to it."""

    __tablename__ = "erasure_requests"
    __table_args__ = (
        Index(
            "uq_erasure_requests_pending",
            "org_id",
            "lead_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_erasure_requests_due", "due_at", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    lead_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    requested_by: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    details: Mapped[JsonObject] = mapped_column(JSONB, nullable=False, default=dict)


class ErasureTombstone(Base):
    """Blind indexes of an erased person (never plaintext), re-applied when a backup returns."""

    __tablename__ = "erasure_tombstones"

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    phone_bidx: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_bidx: Mapped[bytes | None] = mapped_column(LargeBinary)
    platform_bidx: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


# Lets purge_inbound find purgeable payloads without scanning purged rows.
Index(
    "ix_inbound_events_purgeable",
    InboundEvent.processed_at,
    postgresql_where=text("payload_ct IS NOT NULL"),
)

# Tables erasure must not treat as "rows tied to the lead" (they record the erasure itself).
ERASURE_BOOKKEEPING = frozenset({"erasure_requests"})
# Tables a backup bundle leaves out: the keys (never), retention's own bookkeeping, and
# OAuth authorizations in progress (a restored nonce could be consumed a second time).
NOT_BACKED_UP = frozenset(
    {KEY_TABLE, "backups", "erasure_requests", "erasure_tombstones", "audit_log", "oauth_states"}
)


def tables_with_column(column: str) -> list[Table]:
    """Every registered table that has `column`, parents before children (FK order)."""
    return [table for table in Base.metadata.sorted_tables if column in table.c]


def tenant_tables() -> list[Table]:
    return tables_with_column("org_id")


def lead_linked_tables() -> list[Table]:
    return [t for t in tables_with_column("lead_id") if t.name not in ERASURE_BOOKKEEPING]


def backup_tables() -> list[Table]:
    return [t for t in tenant_tables() if t.name not in NOT_BACKED_UP]


def app_can_read(session: Session, table: Table) -> bool:
    """Whether the session's role may read `table` (maintenance-only tables are skipped)."""
    query = text("SELECT has_table_privilege(:table, 'SELECT')")
    return bool(session.scalar(query, {"table": table.name}))


def delete_batch(session: Session, table: Table, where: Mapping[str, object], limit: int) -> int:
    """Delete at most `limit` rows of `table` matching `where`; row locks only."""
    # ctid = ANY(ARRAY(...)) is a TID scan: it never scans the table as IN (...) might.
    conditions = " AND ".join(f'"{column}" = :w{i}' for i, column in enumerate(where))
    statement = text(
        f'DELETE FROM "{table.name}" WHERE ctid = ANY(ARRAY('  # noqa: S608 (names from metadata)
        f'SELECT ctid FROM "{table.name}" WHERE {conditions} LIMIT :limit))'
    )
    params = {f"w{i}": value for i, value in enumerate(where.values())}
    result = session.execute(statement, {**params, "limit": limit})
    return int(result.rowcount)  # type: ignore[attr-defined]


def any_rows(session: Session, table: Table, where: Mapping[str, object]) -> bool:
    query = select(exists().where(*(table.c[c] == v for c, v in where.items())))
    return bool(session.scalar(query))


def delete_all(
    open_session: Callable[[], AbstractContextManager[Session]],
    table: Table,
    where: Mapping[str, object],
    batch: int,
) -> int:
    """Delete every matching row in short transactions of at most `batch` rows each."""
    total = 0
    while True:
        with open_session() as session:
            deleted = delete_batch(session, table, where, batch)
            # A row updated while we deleted moves (new ctid); look again before stopping.
            more = deleted > 0 or any_rows(session, table, where)
        total += deleted
        if not more:
            return total
