"""The encrypted backup bundle format: JSON lines, gzip, AES-256-GCM in authenticated chunks.

A bundle file is `MAGIC` followed by chunks, each `length (4 bytes) | nonce | ciphertext+tag`.
Every chunk's AAD names the backup, the chunk's position and whether it is the last one, so
chunks cannot be reordered, dropped or truncated without decryption failing. The bundle key
is fresh per backup and is stored only wrapped by the organisation's data key (in the
manifest), so shredding the organisation's keys makes every copy of the bundle unreadable.
Rows are encoded per column type (bytes as base64, so ciphertext columns stay ciphertext).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import json
import struct
import uuid
import zlib
from collections.abc import Iterator, Mapping
from typing import IO, TypeVar, cast

from sqlalchemy import Date, DateTime, LargeBinary, Numeric, Table, Uuid
from sqlalchemy.types import TypeEngine

from leadline.errors import CryptoError
from leadline.jsondata import JsonObject
from models.crypto import open_sealed, seal

MAGIC = b"LLBK\x01"
CHUNK_BYTES = 1 << 20
_LENGTH = struct.Struct(">I")
FORMAT = 1
# A row as SQLAlchemy reads and writes it: column name to Python value.
Row = dict[str, object]
T = TypeVar("T")


def chunk_aad(backup_id: uuid.UUID, index: int, final: bool) -> bytes:
    return f"leadline:backup:{backup_id}:{index}:{int(final)}".encode()


class BundleWriter:
    """Compresses and encrypts JSON records into `sink`, one chunk at a time."""

    def __init__(self, sink: IO[bytes], key: bytes, backup_id: uuid.UUID) -> None:
        self.sink = sink
        self.key = key
        self.backup_id = backup_id
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.records = 0
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
        self._buffer = bytearray()
        self._index = 0
        self._emit(MAGIC)

    def write_record(self, record: Mapping[str, object]) -> None:
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        self._buffer += self._compressor.compress(line)
        self.records += 1
        while len(self._buffer) > CHUNK_BYTES:
            self._seal_chunk(bytes(self._buffer[:CHUNK_BYTES]), final=False)
            del self._buffer[:CHUNK_BYTES]

    def close(self) -> None:
        self._buffer += self._compressor.flush()
        self._seal_chunk(bytes(self._buffer), final=True)
        self._buffer.clear()

    def _seal_chunk(self, plaintext: bytes, final: bool) -> None:
        sealed = seal(self.key, plaintext, chunk_aad(self.backup_id, self._index, final))
        self._emit(_LENGTH.pack(len(sealed)) + sealed)
        self._index += 1

    def _emit(self, data: bytes) -> None:
        self.sink.write(data)
        self.sha256.update(data)
        self.size += len(data)


def read_records(source: IO[bytes], key: bytes, backup_id: uuid.UUID) -> Iterator[object]:
    """Decrypt, decompress and parse a bundle, one JSON value per line. Raises CryptoError on
    any tampering."""
    decompressor = zlib.decompressobj(31)
    pending = b""
    for plaintext in _open_chunks(source, key, backup_id):
        pending += decompressor.decompress(plaintext)
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield json.loads(line)
    pending += decompressor.flush()
    if pending.strip():
        yield json.loads(pending)


def _open_chunks(source: IO[bytes], key: bytes, backup_id: uuid.UUID) -> Iterator[bytes]:
    if source.read(len(MAGIC)) != MAGIC:
        raise CryptoError("not a Leadline backup bundle")
    index = 0
    header = source.read(_LENGTH.size)
    while header:
        sealed = source.read(_LENGTH.unpack(header)[0])
        header = source.read(_LENGTH.size)
        final = not header
        yield open_sealed(key, sealed, chunk_aad(backup_id, index, final))
        index += 1
    if index == 0:
        raise CryptoError("backup bundle is empty")


def encode_row(row: Row) -> JsonObject:
    return {column: encode_value(value) for column, value in row.items()}


def encode_value(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    return value


def decode_row(table: Table, row: JsonObject) -> Row:
    """Values typed for `table`'s columns; columns the table no longer has are dropped."""
    return {
        name: decode_value(table.c[name].type, value)
        for name, value in row.items()
        if name in table.c
    }


def decode_value(column_type: TypeEngine[object], value: object) -> object:
    if value is None:
        return None
    # What encode_value wrote for the column type; anything else fails in the parser.
    encoded = cast(str, value)
    if isinstance(column_type, LargeBinary):
        return base64.b64decode(encoded)
    if isinstance(column_type, DateTime):
        return dt.datetime.fromisoformat(encoded)
    if isinstance(column_type, Date):
        return dt.date.fromisoformat(encoded)
    if isinstance(column_type, Uuid):
        return uuid.UUID(encoded)
    if isinstance(column_type, Numeric):
        return decimal.Decimal(encoded)
    return value


def column_value(row: Mapping[str, object], column: str, kind: type[T]) -> T:
    """A decoded row's value, of the type its column holds (TypeError if it is not)."""
    value = row[column]
    if not isinstance(value, kind):
        raise TypeError(f"{column} is {type(value).__name__}, not {kind.__name__}")
    return value
