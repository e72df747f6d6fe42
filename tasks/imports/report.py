"""What the caller reads back: an import's status and counters, and its error CSV (each
rejected row's line, reason and cells, escaped against formula injection like every export)."""

from __future__ import annotations

import csv
import io
import uuid
from typing import TypedDict

from sqlalchemy.orm import Session

from leadline.errors import NotFoundError
from models.crypto import OrgCipher
from models.imports import LeadImport, header_of, rejections_of
from tasks.context import TaskContext
from tasks.export import escape_cell


class ImportReport(TypedDict):
    id: str
    status: str
    rows: int
    imported: int
    updated: int
    rejected: int
    errors_url: str


def errors_path(import_id: uuid.UUID) -> str:
    return f"/v1/imports/{import_id}/errors"


def import_report(lead_import: LeadImport) -> ImportReport:
    return ImportReport(
        id=str(lead_import.id),
        status=lead_import.status,
        rows=lead_import.rows,
        imported=lead_import.imported,
        updated=lead_import.updated,
        rejected=lead_import.rejected,
        errors_url=errors_path(lead_import.id),
    )


def get_import(session: Session, import_id: uuid.UUID) -> LeadImport:
    """The org's import (tenant session: another org's id is not found)."""
    lead_import = session.get(LeadImport, import_id)
    if lead_import is None:
        raise NotFoundError("import not found")
    return lead_import


def errors_csv(session: Session, cipher: OrgCipher, import_id: uuid.UUID) -> bytes:
    """`line,reason,<the file's columns>`, one row per rejected line, in file order."""
    header = header_of(cipher, get_import(session, import_id))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([escape_cell(cell) for cell in ["line", "reason", *header]])
    for rejection in rejections_of(session, cipher, import_id):
        cells = [rejection.line, rejection.reason, *rejection.cells]
        writer.writerow([escape_cell(cell) for cell in cells])
    return buffer.getvalue().encode()


def read_report(context: TaskContext, org_id: uuid.UUID, import_id: uuid.UUID) -> ImportReport:
    with context.db.tenant(org_id) as session:
        return import_report(get_import(session, import_id))


def read_errors_csv(context: TaskContext, org_id: uuid.UUID, import_id: uuid.UUID) -> bytes:
    with context.db.tenant(org_id) as session:
        return errors_csv(session, context.keys.cipher(session, org_id), import_id)
