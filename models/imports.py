"""CSV lead imports: the import row (status and counters), the uploaded file as encrypted
chunks of rows waiting to be processed, and the rejected rows (encrypted) for the error CSV.

A chunk is claimed (row lock, SKIP LOCKED: several workers write different chunks of one
import at once) and deleted in the transaction that writes its leads and advances `next_line`
and the counters, so a worker killed mid-import resumes at the chunks left, and a chunk is
never written twice. Everything from the file (header, cells) is ciphertext under the org's key; the
file's SHA-256 is kept only as a blind index (same file, same org: the same import).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    delete,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, now_column, org_fk, uuid_pk
from models.crypto import OrgCipher

IMPORTS = "lead_imports"
CHUNKS = "lead_import_chunks"
ERRORS = "lead_import_errors"
SHA256_INDEX = "import_sha256"


class ImportStatus(StrEnum):
    PENDING = "pending"  # stored, no batch processed yet
    RUNNING = "running"
    DONE = "done"


class LeadImport(Base):
    __tablename__ = IMPORTS
    __table_args__ = (UniqueConstraint("org_id", "sha256_bidx", name="uq_lead_imports_file"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=ImportStatus.PENDING)
    sha256_bidx: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # The file's header as uploaded (JSON list, encrypted) and the lead field of each column.
    header_ct: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    fields: Mapped[list[str | None]] = mapped_column(JSONB, nullable=False)
    rows: Mapped[int] = mapped_column(Integer, nullable=False)
    imported: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    updated: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rejected: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The file line of the first row not yet processed (the header is line 1).
    next_line: Mapped[int] = mapped_column(Integer, nullable=False)
    # The line after the file's last row: `next_line` once done.
    end_line: Mapped[int] = mapped_column(Integer, nullable=False)
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = now_column()
    updated_at: Mapped[datetime] = now_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LeadImportChunk(Base):
    """Up to one batch of rows, `[[line, [cells...]], ...]` as encrypted JSON."""

    __tablename__ = CHUNKS
    __table_args__ = (UniqueConstraint("import_id", "first_line", name="uq_lead_import_chunks"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    import_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("lead_imports.id", ondelete="CASCADE"), nullable=False
    )
    first_line: Mapped[int] = mapped_column(Integer, nullable=False)
    rows_ct: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class LeadImportError(Base):
    """A rejected row: its line, why (our words, never its values) and its cells, encrypted."""

    __tablename__ = ERRORS
    __table_args__ = (UniqueConstraint("import_id", "line", name="uq_lead_import_errors"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    import_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("lead_imports.id", ondelete="CASCADE"), nullable=False
    )
    line: Mapped[int] = mapped_column(Integer, nullable=False)
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    cells_ct: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


Cells = list[str]
NumberedRow = tuple[int, Cells]


@dataclass(frozen=True)
class NewImport:
    """A scanned file, ready to store: header, field per column, rows in chunks."""

    sha256: str
    header: Cells
    fields: list[str | None]
    chunks: list[list[NumberedRow]]
    actor: str

    @property
    def rows(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)


@dataclass(frozen=True)
class StoredImport:
    id: uuid.UUID
    created: bool  # False: the same file was imported into this org before


@dataclass(frozen=True)
class Rejection:
    line: int
    reason: str
    cells: Cells


def file_index(cipher: OrgCipher, sha256: str) -> bytes:
    return cipher.blind_index(SHA256_INDEX, sha256)


def store_import(session: Session, cipher: OrgCipher, new: NewImport) -> StoredImport:
    """Insert the import and its chunks, unless this org already has the same file."""
    import_id = uuid.uuid4()
    first_line = new.chunks[0][0][0] if new.chunks else 2
    end_line = new.chunks[-1][-1][0] + 1 if new.chunks else 2
    inserted = session.execute(
        insert(LeadImport)
        .values(
            id=import_id,
            org_id=cipher.org_id,
            status=ImportStatus.PENDING if new.chunks else ImportStatus.DONE,
            sha256_bidx=file_index(cipher, new.sha256),
            header_ct=cipher.encrypt(
                json.dumps(new.header).encode(), IMPORTS, "header_ct", import_id
            ),
            fields=new.fields,
            rows=new.rows,
            imported=0,
            updated=0,
            rejected=0,
            next_line=first_line,
            end_line=end_line,
            actor=new.actor,
        )
        .on_conflict_do_nothing(constraint="uq_lead_imports_file")
        .returning(LeadImport.id)
    ).scalar_one_or_none()
    if inserted is None:
        existing = find_import_by_file(session, cipher, new.sha256)
        assert existing is not None
        return StoredImport(existing.id, created=False)
    if new.chunks:
        session.execute(
            insert(LeadImportChunk), [_chunk_values(cipher, import_id, c) for c in new.chunks]
        )
    return StoredImport(import_id, created=True)


def _chunk_values(
    cipher: OrgCipher, import_id: uuid.UUID, chunk: list[NumberedRow]
) -> dict[str, object]:
    chunk_id = uuid.uuid4()
    content = json.dumps(chunk, ensure_ascii=False).encode()
    return {
        "id": chunk_id,
        "org_id": cipher.org_id,
        "import_id": import_id,
        "first_line": chunk[0][0],
        "rows_ct": cipher.encrypt(content, CHUNKS, "rows_ct", chunk_id),
    }


def find_import_by_file(session: Session, cipher: OrgCipher, sha256: str) -> LeadImport | None:
    query = select(LeadImport).where(LeadImport.sha256_bidx == file_index(cipher, sha256))
    return session.scalars(query).first()


def lock_import(session: Session, import_id: uuid.UUID) -> LeadImport | None:
    """The import, its counters as last committed, locked until COMMIT (FOR NO KEY UPDATE:
    the chunk and error rows' foreign-key checks do not wait for it)."""
    query = (
        select(LeadImport)
        .where(LeadImport.id == import_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    return session.scalars(query).first()


def header_of(cipher: OrgCipher, lead_import: LeadImport) -> Cells:
    plain = cipher.decrypt(lead_import.header_ct, IMPORTS, "header_ct", lead_import.id)
    header: Cells = json.loads(plain)
    return header


def claim_chunk(session: Session, import_id: uuid.UUID) -> LeadImportChunk | None:
    """The first chunk no other transaction is writing, locked until COMMIT."""
    query = (
        select(LeadImportChunk)
        .where(LeadImportChunk.import_id == import_id)
        .order_by(LeadImportChunk.first_line)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return session.scalars(query).first()


def first_unwritten_line(session: Session, import_id: uuid.UUID) -> int | None:
    """The first line of the chunks left (being written elsewhere included), or None."""
    query = select(func.min(LeadImportChunk.first_line)).where(
        LeadImportChunk.import_id == import_id
    )
    line: int | None = session.scalar(query)
    return line


def chunk_rows(cipher: OrgCipher, chunk: LeadImportChunk) -> list[NumberedRow]:
    plain = cipher.decrypt(chunk.rows_ct, CHUNKS, "rows_ct", chunk.id)
    return [(int(line), [str(cell) for cell in cells]) for line, cells in json.loads(plain)]


def drop_chunk(session: Session, chunk: LeadImportChunk) -> None:
    session.execute(delete(LeadImportChunk).where(LeadImportChunk.id == chunk.id))


def record_rejections(
    session: Session, cipher: OrgCipher, import_id: uuid.UUID, rejections: list[Rejection]
) -> None:
    if not rejections:
        return
    values = []
    for rejection in rejections:
        error_id = uuid.uuid4()
        cells = json.dumps(rejection.cells, ensure_ascii=False).encode()
        values.append(
            {
                "id": error_id,
                "org_id": cipher.org_id,
                "import_id": import_id,
                "line": rejection.line,
                "reason": rejection.reason,
                "cells_ct": cipher.encrypt(cells, ERRORS, "cells_ct", error_id),
            }
        )
    session.execute(insert(LeadImportError).on_conflict_do_nothing(), values)


def rejections_of(session: Session, cipher: OrgCipher, import_id: uuid.UUID) -> list[Rejection]:
    query = (
        select(LeadImportError)
        .where(LeadImportError.import_id == import_id)
        .order_by(LeadImportError.line)
    )
    return [
        Rejection(
            row.line,
            row.reason,
            json.loads(cipher.decrypt(row.cells_ct, ERRORS, "cells_ct", row.id)),
        )
        for row in session.scalars(query)
    ]


def purge_errors(session: Session, finished_before: datetime, limit: int) -> int:
    """Maintenance session: delete up to `limit` rejected rows of imports done before then."""
    done = select(LeadImport.id).where(
        LeadImport.status == ImportStatus.DONE, LeadImport.finished_at < finished_before
    )
    ids = (
        select(LeadImportError.id)
        .where(LeadImportError.import_id.in_(done))
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    result = session.execute(delete(LeadImportError).where(LeadImportError.id.in_(ids)))
    return int(result.rowcount)  # type: ignore[attr-defined]


def stale_imports(session: Session, older_than: datetime) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Maintenance session: (org, import) of unfinished imports nobody advanced lately."""
    query = select(LeadImport.org_id, LeadImport.id).where(
        LeadImport.status.in_([ImportStatus.PENDING, ImportStatus.RUNNING]),
        LeadImport.updated_at < older_than,
    )
    return [(org_id, import_id) for org_id, import_id in session.execute(query).all()]
