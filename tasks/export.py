"""Export of an organisation's leads and everything tied to them, decrypted, as JSON or CSV.

CSV is a zip of one file per table (`leads.csv`, then one per table of lead-linked rows such
as conversation messages). Spreadsheet formula injection is prevented: a cell starting with
= + - @, a tab or a carriage return is prefixed with a single quote.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from leadline.errors import CryptoError
from leadline.jsondata import JsonObject
from leadline.progress import ProgressCallback
from models.audit import record_audit
from models.base import Base
from models.bundles import Row, column_value
from models.crypto import OrgCipher
from models.retention import app_can_read, lead_linked_tables
from models.tables import Lead
from tasks.context import TaskContext

ExportFormat = Literal["json", "csv"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CIPHERTEXT_SUFFIX = "_ct"
BLIND_INDEX_SUFFIX = "_bidx"


@dataclass(frozen=True)
class Export:
    content: bytes
    media_type: str
    filename: str
    counts: dict[str, int]


def export_org(
    context: TaskContext,
    org_id: uuid.UUID,
    fmt: ExportFormat,
    actor: str = "cli",
    on_progress: ProgressCallback | None = None,
) -> Export:
    """`on_progress(rows_done, rows_total)` is called as rows are read and decrypted."""
    with context.db.tenant_snapshot(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        tables = collect_tables(session, cipher, on_progress)
        counts = {name: len(rows) for name, rows in tables.items()}
        record_audit(
            session,
            actor,
            "org.exported",
            org_id=org_id,
            target=str(org_id),
            details={"format": fmt, "rows": counts},
        )
    now = context.clock()
    if fmt == "csv":
        return Export(csv_bundle(tables), "application/zip", f"leadline-{org_id}.zip", counts)
    document = {"format": 1, "org_id": str(org_id), "exported_at": now.isoformat(), **tables}
    body = json.dumps(document, default=str, ensure_ascii=False, indent=2).encode()
    return Export(body, "application/json", f"leadline-{org_id}.json", counts)


def collect_tables(
    session: Session, cipher: OrgCipher, on_progress: ProgressCallback | None = None
) -> dict[str, list[JsonObject]]:
    lead_table: Table = Lead.__table__  # type: ignore[assignment]
    chosen = [lead_table, *(t for t in lead_linked_tables() if app_can_read(session, t))]
    report = on_progress or (lambda _done, _total: None)
    total = sum(int(session.scalar(select(func.count()).select_from(t)) or 0) for t in chosen)
    done = 0
    report(done, total)
    tables: dict[str, list[JsonObject]] = {}
    for table in chosen:
        rows = tables.setdefault(table.name, [])
        for row in decrypted_rows(session, cipher, table):
            rows.append(row)
            done += 1
            report(done, max(total, done))
    report(done, done)
    return tables


def decrypted_rows(session: Session, cipher: OrgCipher, table: Table) -> Iterator[JsonObject]:
    order = [table.c[c] for c in ("created_at", "id") if c in table.c]
    query = select(table).order_by(*order).execution_options(yield_per=1000)
    for row in session.execute(query):
        yield plain_row(cipher, table.name, dict(row._mapping))


def plain_row(cipher: OrgCipher, table: str, row: Row) -> JsonObject:
    """Ciphertext columns decrypted (bound to this row's id), blind indexes left out."""
    plain: JsonObject = {}
    for column, value in row.items():
        if column.endswith(BLIND_INDEX_SUFFIX) or column == "org_id":
            continue
        if column.endswith(CIPHERTEXT_SUFFIX):
            plain[column[: -len(CIPHERTEXT_SUFFIX)]] = decrypt_cell(
                cipher, table, column, row, value
            )
        else:
            plain[column] = plain_value(value)
    return plain


def decrypt_cell(cipher: OrgCipher, table: str, column: str, row: Row, value: object) -> str | None:
    if not isinstance(value, bytes) or "id" not in row:
        return None
    try:
        data = cipher.decrypt(value, table, column, column_value(row, "id", uuid.UUID))
    except CryptoError:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return base64.b64encode(data).decode()


def plain_value(value: object) -> object:
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def escape_cell(value: object) -> str:
    """A cell a spreadsheet shows as text, never evaluates as a formula."""
    if value is None:
        return ""
    text = json.dumps(value) if isinstance(value, dict | list) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def export_columns(table: Table) -> list[str]:
    return [
        column.name.removesuffix(CIPHERTEXT_SUFFIX)
        for column in table.c
        if not column.name.endswith(BLIND_INDEX_SUFFIX) and column.name != "org_id"
    ]


def csv_table(table: Table, rows: list[JsonObject]) -> str:
    buffer = io.StringIO()
    columns = export_columns(table)
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([escape_cell(row.get(column)) for column in columns])
    return buffer.getvalue()


def csv_bundle(tables: dict[str, list[JsonObject]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, rows in tables.items():
            if rows or name == "leads":
                archive.writestr(f"{name}.csv", csv_table(Base.metadata.tables[name], rows))
    return buffer.getvalue()
