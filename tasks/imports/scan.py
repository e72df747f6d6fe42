"""Everything about an uploaded file that is checked before any row is stored, by the API and
the CLI alike: size, encoding, binary content, CSV syntax, the header and its mapping to lead
fields, and the row count. A refusal carries the HTTP status that says why (413, 415, 422)
and never a value from the file but column names."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Mapping

from leadline.errors import LeadlineError
from models.imports import Cells, NewImport, NumberedRow

FIELDS = (
    "name",
    "phone",
    "email",
    "message",
    "source",
    "consent_sms",
    "consent_text",
    "consent_at",
    "consent_source",
)
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_ROWS = 100_000
BATCH_ROWS = 1_000
UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")
BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
# Spreadsheets and archives, which are never parsed: zip (XLSX, ODS), OLE (XLS), gzip, PDF.
BINARY_SIGNATURES = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0", b"\x1f\x8b", b"%PDF")
IGNORED = ""  # `--map col=` leaves a column out


class ImportRefused(LeadlineError):
    """The file cannot be imported at all; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """`col=field` pairs (a column of the file, a lead field or nothing to leave it out)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, field = pair.partition("=")
        column, field = column.strip().casefold(), field.strip().casefold()
        if not sep or not column:
            raise ImportRefused(422, "a mapping is COLUMN=FIELD, e.g. mobile=phone")
        if field not in (*FIELDS, IGNORED):
            raise ImportRefused(422, f"unknown field {field!r} (fields: {', '.join(FIELDS)})")
        mapping[column] = field
    return mapping


def scan_file(data: bytes, mapping: Mapping[str, str], actor: str) -> NewImport:
    """The file as an import ready to store, or ImportRefused."""
    if len(data) > MAX_FILE_BYTES:
        raise ImportRefused(413, "the file is over 10 MB")
    records = read_records(decode(data))
    if not records:
        raise ImportRefused(422, "the file is empty (a header row is required)")
    (_, header), rows = records[0], records[1:]
    if len(rows) > MAX_ROWS:
        raise ImportRefused(413, f"the file has more than {MAX_ROWS:,} rows")
    fields = map_header(header, mapping)
    chunks = [rows[start : start + BATCH_ROWS] for start in range(0, len(rows), BATCH_ROWS)]
    return NewImport(hashlib.sha256(data).hexdigest(), header, fields, chunks, actor)


def decode(data: bytes) -> str:
    if data.startswith(BINARY_SIGNATURES):
        raise ImportRefused(422, "binary content (a spreadsheet or archive, not CSV text)")
    if data.startswith(UTF32_BOMS):
        raise ImportRefused(415, "UTF-32 is not accepted (UTF-8, or UTF-16 with a BOM)")
    body, codec = data, "utf-8"
    for bom, name in BOMS:
        if data.startswith(bom):
            body, codec = data[len(bom) :], name
            break
    try:
        text = body.decode(codec)
    except UnicodeDecodeError:
        raise ImportRefused(
            415, "the file is not UTF-8, UTF-8 with a BOM, or UTF-16 with a BOM"
        ) from None
    if "\x00" in text:
        raise ImportRefused(422, "binary content (NUL bytes)")
    return text


def read_records(text: str) -> list[NumberedRow]:
    """Every non-blank record with the file line it starts on (the header is line 1)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[NumberedRow] = []
    start = 1
    try:
        for cells in reader:
            if cells and any(cell.strip() for cell in cells):
                records.append((start, cells))
            start = reader.line_num + 1
    except csv.Error:
        raise ImportRefused(422, f"the file is not valid CSV (at line {start})") from None
    return records


def map_header(header: Cells, mapping: Mapping[str, str]) -> list[str | None]:
    """The lead field of each column (None: left out); refuses unknown, unnamed and doubled
    columns, a mapping naming a column the file lacks, and a file without phone or email."""
    names = [cell.strip().casefold() for cell in header]
    if "" in names:
        raise ImportRefused(422, f"column {names.index('') + 1} of the header has no name")
    doubled = sorted({name for name in names if names.count(name) > 1})
    if doubled:
        raise ImportRefused(422, f"columns named twice: {', '.join(doubled)}")
    missing = sorted(set(mapping) - set(names))
    if missing:
        raise ImportRefused(422, f"mapped columns not in the file: {', '.join(missing)}")
    fields = [mapping.get(name, name) for name in names]
    unknown = [
        name for name, field in zip(names, fields, strict=True) if field not in (*FIELDS, IGNORED)
    ]
    if unknown:
        raise ImportRefused(
            422,
            f"unknown columns: {', '.join(unknown)} (map each to a field with COLUMN=FIELD, "
            f"or leave it out with COLUMN=; fields: {', '.join(FIELDS)})",
        )
    chosen = [field for field in fields if field]
    twice = sorted({field for field in chosen if chosen.count(field) > 1})
    if twice:
        raise ImportRefused(422, f"fields given by two columns: {', '.join(twice)}")
    if "phone" not in chosen and "email" not in chosen:
        raise ImportRefused(422, "the file needs a phone or an email column")
    return [field or None for field in fields]
