"""The key escrow: it opens only with the master key, for the org and version it was made for."""

from __future__ import annotations

import base64
import json
import os
import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadline.errors import CryptoError, NotFoundError
from leadline.objectstore import FileStore
from models.crypto import Keyring, new_key
from models.key_escrow import (
    EscrowError,
    decode_escrow,
    escrow_cipher,
    read_escrow,
    rewrap,
    unwrap_keys,
    wrap_keys,
    write_escrow,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def keyring(*ids: str) -> Keyring:
    return Keyring(keys=tuple((kid, os.urandom(32)) for kid in ids))


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, Keyring, uuid.UUID, dict[int, bytes]]:
    master = keyring("k1")
    org_id, deks = uuid.uuid4(), {1: new_key(), 2: new_key()}
    write_escrow(FileStore(tmp_path), {org_id: wrap_keys(master, org_id, deks)}, NOW)
    return tmp_path / "key-escrow.json", master, org_id, deks


def entries(path: Path) -> dict[str, list[dict[str, object]]]:
    document: dict[str, dict[str, list[dict[str, object]]]] = json.loads(path.read_text())
    return document["orgs"]


def test_round_trip_every_version_private_file_no_plaintext_key(
    written: tuple[Path, Keyring, uuid.UUID, dict[int, bytes]],
) -> None:
    path, master, org_id, deks = written
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert (document["format"], document["version"]) == ("leadline-key-escrow", 1)
    raw = path.read_bytes()
    for dek in deks.values():
        assert dek not in raw and base64.b64encode(dek) not in raw
    assert escrow_cipher(master, org_id, read_escrow(FileStore(path.parent))[org_id]).deks == deks
    assert [p.name for p in path.parent.iterdir()] == ["key-escrow.json"]  # no temp file left


def test_a_tampered_entry_fails(written: tuple[Path, Keyring, uuid.UUID, dict[int, bytes]]) -> None:
    path, master, org_id, _ = written
    document = json.loads(path.read_text())
    wrapped = bytearray(base64.b64decode(document["orgs"][str(org_id)][0]["wrapped"]))
    wrapped[-1] ^= 0x01
    document["orgs"][str(org_id)][0]["wrapped"] = base64.b64encode(bytes(wrapped)).decode()
    path.write_text(json.dumps(document))
    with pytest.raises(EscrowError, match=str(org_id)):
        escrow_cipher(master, org_id, read_escrow(FileStore(path.parent))[org_id])


def test_an_entry_moved_to_another_org_or_version_fails(
    written: tuple[Path, Keyring, uuid.UUID, dict[int, bytes]],
) -> None:
    path, master, org_id, _ = written
    keys = read_escrow(FileStore(path.parent))[org_id]
    with pytest.raises(EscrowError):
        unwrap_keys(master, uuid.uuid4(), keys)  # AAD binds the org
    swapped = (keys[0].__class__(2, keys[0].kek_id, keys[0].wrapped),)
    with pytest.raises(EscrowError):
        unwrap_keys(master, org_id, swapped)  # and the version


def test_the_wrong_master_key_fails_with_a_clear_error(
    written: tuple[Path, Keyring, uuid.UUID, dict[int, bytes]],
) -> None:
    path, _, org_id, _ = written
    keys = read_escrow(FileStore(path.parent))[org_id]
    with pytest.raises(EscrowError) as same_id:
        unwrap_keys(keyring("k1"), org_id, keys)
    assert "does not open with master key 'k1'" in str(same_id.value)
    assert "LEADLINE_MASTER_KEYS" in str(same_id.value)
    with pytest.raises(EscrowError) as other_id:
        unwrap_keys(keyring("k2"), org_id, keys)
    assert str(other_id.value).startswith("the key escrow is wrapped by master key 'k1'")


def test_rewrap_moves_entries_under_the_new_primary(
    written: tuple[Path, Keyring, uuid.UUID, dict[int, bytes]],
) -> None:
    path, old, org_id, deks = written
    rotated = Keyring(keys=(("k2", os.urandom(32)), old.keys[0]))
    moved = rewrap(rotated, org_id, read_escrow(FileStore(path.parent))[org_id])
    assert {entry.kek_id for entry in moved} == {"k2"}
    only_new = Keyring(keys=(rotated.keys[0],))
    assert unwrap_keys(only_new, org_id, moved) == deks


def test_missing_malformed_and_future_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no key escrow at"):
        read_escrow(FileStore(tmp_path))
    with pytest.raises(CryptoError, match="malformed"):
        decode_escrow(b"{not json")
    with pytest.raises(CryptoError, match="format version 2"):
        decode_escrow(json.dumps({"format": "leadline-key-escrow", "version": 2}).encode())
