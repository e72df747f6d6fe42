"""The backup bundle format: round trip, and any tampering is detected."""

from __future__ import annotations

import io
import os
import uuid

import pytest

from leadline.errors import CryptoError
from models.bundles import CHUNK_BYTES, BundleWriter, read_records
from models.crypto import new_key
from tasks.export import escape_cell

pytestmark = pytest.mark.unit


def write(records: list[dict[str, str]], key: bytes, backup_id: uuid.UUID) -> bytes:
    sink = io.BytesIO()
    writer = BundleWriter(sink, key, backup_id)
    for record in records:
        writer.write_record(record)
    writer.close()
    return sink.getvalue()


# Incompressible records spanning several chunks.
RECORDS = [{"blob": os.urandom(300_000).hex()} for _ in range(8)]


def test_round_trip_over_several_chunks() -> None:
    key, backup_id = new_key(), uuid.uuid4()
    data = write(RECORDS, key, backup_id)
    assert len(data) > 2 * CHUNK_BYTES
    assert list(read_records(io.BytesIO(data), key, backup_id)) == RECORDS


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d[: len(d) - 100],  # truncated tail
        lambda d: d[: 5 + 4 + 12 + 16 + CHUNK_BYTES],  # only the first chunk left
        lambda d: d[:200] + bytes([d[200] ^ 1]) + d[201:],  # one bit flipped
    ],
)
def test_tampered_bundle_is_refused(tamper: object) -> None:
    key, backup_id = new_key(), uuid.uuid4()
    data = write(RECORDS, key, backup_id)
    with pytest.raises(CryptoError):
        list(read_records(io.BytesIO(tamper(data)), key, backup_id))  # type: ignore[operator]


def test_bundle_is_bound_to_its_key_and_id() -> None:
    key, backup_id = new_key(), uuid.uuid4()
    data = write(RECORDS[:1], key, backup_id)
    with pytest.raises(CryptoError):
        list(read_records(io.BytesIO(data), new_key(), backup_id))
    with pytest.raises(CryptoError):
        list(read_records(io.BytesIO(data), key, uuid.uuid4()))


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_formula_starts_are_escaped(start: str) -> None:
    assert escape_cell(f"{start}SUM(A1)") == f"'{start}SUM(A1)"


def test_plain_cells_are_unchanged() -> None:
    assert escape_cell("Ada") == "Ada" and escape_cell(None) == "" and escape_cell(3) == "3"
