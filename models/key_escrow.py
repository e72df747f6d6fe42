"""Key escrow: every organisation's data keys, wrapped by the master key, beside the backups.

Bundles are readable only with their organisation's data keys (models.bundles, tasks.backups).
Those live in the database, so without this object a lost database would take every backup
with it. `key-escrow.json` in the backup store holds, per organisation, every DEK version
wrapped (AES-256-GCM) by a master key, the AAD binding each wrapped key to its organisation
and version; nothing in it is readable without the master key. It is rewritten at every
backup run and an organisation's entry leaves it when the organisation is deleted, so a
deleted organisation's bundles stay unreadable even to someone holding this object and the
master key. It is written atomically through the store (a directory: temporary file, fsync,
rename, mode 0600; S3: one object put).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from leadline.errors import CryptoError, KeyNotFoundError, NotFoundError
from leadline.objectstore import ObjectNotFound, ObjectStore
from models.crypto import Keyring, OrgCipher, open_sealed, seal

ESCROW_KEY = "key-escrow.json"
KIND = "leadline-key-escrow"
VERSION = 1


class EscrowError(CryptoError):
    """The escrow is missing, malformed, or does not open with the configured master keys."""


@dataclass(frozen=True)
class EscrowedKey:
    """One DEK version of an organisation, wrapped by the master key `kek_id`."""

    version: int
    kek_id: str
    wrapped: bytes


Escrow = dict[uuid.UUID, tuple[EscrowedKey, ...]]


class EscrowEntry(TypedDict):
    """One EscrowedKey in the escrow document."""

    version: int
    kek_id: str
    wrapped: str  # base64


def escrow_aad(org_id: uuid.UUID, version: int) -> bytes:
    # Not the database's DEK binding: an escrowed key is only ever opened as an escrowed key.
    return f"leadline:escrow:v{VERSION}:{org_id}:{version}".encode()


def wrap_keys(
    keyring: Keyring, org_id: uuid.UUID, deks: Mapping[int, bytes]
) -> tuple[EscrowedKey, ...]:
    """Every version of an organisation's DEKs, wrapped under the primary master key."""
    key = keyring.key(keyring.primary_id)
    return tuple(
        EscrowedKey(version, keyring.primary_id, seal(key, dek, escrow_aad(org_id, version)))
        for version, dek in sorted(deks.items())
    )


def unwrap_keys(
    keyring: Keyring, org_id: uuid.UUID, keys: tuple[EscrowedKey, ...]
) -> dict[int, bytes]:
    """The DEKs of one entry. Raises EscrowError naming the organisation, never a key."""
    deks: dict[int, bytes] = {}
    for entry in keys:
        try:
            kek = keyring.key(entry.kek_id)
        except KeyNotFoundError:
            raise EscrowError(
                f"the key escrow is wrapped by master key {entry.kek_id!r}, which is not "
                "configured (add it to LEADLINE_MASTER_KEYS)"
            ) from None
        try:
            deks[entry.version] = open_sealed(kek, entry.wrapped, escrow_aad(org_id, entry.version))
        except CryptoError:
            raise EscrowError(
                f"the key escrow entry of organisation {org_id} does not open with master key "
                f"{entry.kek_id!r} (the file was altered, or that key id names another key: "
                "check LEADLINE_MASTER_KEYS)"
            ) from None
    return deks


def escrow_cipher(keyring: Keyring, org_id: uuid.UUID, keys: tuple[EscrowedKey, ...]) -> OrgCipher:
    return OrgCipher(org_id=org_id, deks=unwrap_keys(keyring, org_id, keys))


def rewrap(
    keyring: Keyring, org_id: uuid.UUID, keys: tuple[EscrowedKey, ...]
) -> tuple[EscrowedKey, ...]:
    """An entry moved under the primary master key when the key it is under is configured."""
    if all(entry.kek_id == keyring.primary_id for entry in keys):
        return keys
    if not all(kid in dict(keyring.keys) for kid in {entry.kek_id for entry in keys}):
        return keys  # carried as it is: whoever holds that master key can still open it
    return wrap_keys(keyring, org_id, unwrap_keys(keyring, org_id, keys))


def encode_escrow(escrow: Escrow, now: datetime) -> bytes:
    document = {
        "format": KIND,
        "version": VERSION,
        "written_at": now.isoformat(),
        "orgs": {
            str(org_id): [_encode_entry(entry) for entry in keys]
            for org_id, keys in sorted(escrow.items(), key=lambda item: str(item[0]))
        },
    }
    return json.dumps(document, indent=2).encode()


def decode_escrow(data: bytes) -> Escrow:
    try:
        document = json.loads(data)
        if document.get("format") != KIND:
            raise ValueError("not an escrow")
        if document.get("version") != VERSION:
            raise EscrowError(
                f"the key escrow has format version {document.get('version')!r}, this Leadline "
                f"reads version {VERSION} (restore with the Leadline release that wrote it)"
            )
        return {uuid.UUID(org): _decode_entry(keys) for org, keys in document["orgs"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise EscrowError(
            "the key escrow file is malformed (restore key-escrow.json from a copy of the "
            "backup directory)"
        ) from None


def _encode_entry(entry: EscrowedKey) -> EscrowEntry:
    wrapped = base64.b64encode(entry.wrapped).decode()
    return {"version": entry.version, "kek_id": entry.kek_id, "wrapped": wrapped}


def _decode_entry(keys: list[EscrowEntry]) -> tuple[EscrowedKey, ...]:
    return tuple(
        EscrowedKey(int(key["version"]), str(key["kek_id"]), base64.b64decode(key["wrapped"]))
        for key in keys
    )


def read_escrow(store: ObjectStore) -> Escrow:
    try:
        data = store.get(ESCROW_KEY)
    except ObjectNotFound:
        raise NotFoundError(
            f"no key escrow at {store.location(ESCROW_KEY)} (every backup run writes it; "
            "restore --from needs the whole backup store, key-escrow.json included)"
        ) from None
    except OSError:
        raise EscrowError(
            f"the key escrow at {store.location(ESCROW_KEY)} cannot be read (check its permissions)"
        ) from None
    return decode_escrow(data)


def write_escrow(store: ObjectStore, escrow: Escrow, now: datetime) -> None:
    """Replace the escrow atomically: a reader sees the old one or the new one, never half."""
    store.put(ESCROW_KEY, encode_escrow(escrow, now))
