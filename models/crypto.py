"""Envelope encryption: AES-256-GCM under per-organisation data keys wrapped by master keys.

Ciphertext layout: format version (1 byte) | DEK version (4 bytes, big endian) | nonce (12) |
ciphertext and tag. The AAD binds each value to its organisation, table, column and row, so a
ciphertext copied anywhere else fails to decrypt.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass, field
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from leadline.errors import CryptoError, KeyNotFoundError

FORMAT_VERSION = 1
NONCE_BYTES = 12
KEY_BYTES = 32
BLIND_INDEX_BYTES = 16
_HEADER = struct.Struct(">BI")


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def value_aad(org_id: UUID, table: str, column: str, row_id: UUID | str) -> bytes:
    return f"leadline:v1:{org_id}:{table}:{column}:{row_id}".encode()


def dek_aad(org_id: UUID, version: int) -> bytes:
    return f"leadline:dek:{org_id}:{version}".encode()


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
    try:
        return AESGCM(key).decrypt(nonce, body, aad)
    except InvalidTag:
        raise CryptoError("value does not decrypt under this key and binding") from None


@dataclass(frozen=True)
class Keyring:
    """The master keys (KEKs) from the environment; the first is primary."""

    keys: tuple[tuple[str, bytes], ...]

    @property
    def primary_id(self) -> str:
        return self.keys[0][0]

    def key(self, key_id: str) -> bytes:
        for kid, key in self.keys:
            if kid == key_id:
                return key
        raise KeyNotFoundError(f"master key {key_id!r} is not configured")

    def wrap(self, dek: bytes, org_id: UUID, version: int) -> tuple[str, bytes]:
        return self.primary_id, seal(self.key(self.primary_id), dek, dek_aad(org_id, version))

    def unwrap(self, key_id: str, wrapped: bytes, org_id: UUID, version: int) -> bytes:
        return open_sealed(self.key(key_id), wrapped, dek_aad(org_id, version))


@dataclass
class OrgCipher:
    """An organisation's unwrapped data keys; encrypts under the newest version."""

    org_id: UUID
    deks: dict[int, bytes]
    index_key: bytes = field(init=False)

    def __post_init__(self) -> None:
        if not self.deks:
            raise KeyNotFoundError("organisation has no data key")
        self.index_key = derive_index_key(self.deks[min(self.deks)])

    @property
    def current_version(self) -> int:
        return max(self.deks)

    def encrypt(self, plaintext: bytes, table: str, column: str, row_id: UUID | str) -> bytes:
        version = self.current_version
        aad = value_aad(self.org_id, table, column, row_id)
        return _HEADER.pack(FORMAT_VERSION, version) + seal(self.deks[version], plaintext, aad)

    def decrypt(self, ciphertext: bytes, table: str, column: str, row_id: UUID | str) -> bytes:
        if len(ciphertext) < _HEADER.size + NONCE_BYTES + 16:
            raise CryptoError("ciphertext is truncated")
        fmt, version = _HEADER.unpack_from(ciphertext)
        if fmt != FORMAT_VERSION:
            raise CryptoError(f"unknown ciphertext format {fmt}")
        key = self.deks.get(version)
        if key is None:
            raise KeyNotFoundError(f"data key version {version} is not available")
        aad = value_aad(self.org_id, table, column, row_id)
        return open_sealed(key, ciphertext[_HEADER.size :], aad)

    def encrypt_text(
        self, value: str | None, table: str, column: str, row_id: UUID
    ) -> bytes | None:
        if value is None:
            return None
        return self.encrypt(value.encode(), table, column, row_id)

    def decrypt_text(
        self, value: bytes | None, table: str, column: str, row_id: UUID
    ) -> str | None:
        if value is None:
            return None
        return self.decrypt(value, table, column, row_id).decode()

    def blind_index(self, kind: str, normalized: str) -> bytes:
        """A keyed, truncated HMAC for equality lookups without storing the value."""
        digest = hmac.new(self.index_key, f"{kind}:{normalized}".encode(), hashlib.sha256)
        return digest.digest()[:BLIND_INDEX_BYTES]


def derive_index_key(first_dek: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=b"leadline-bidx")
    return hkdf.derive(first_dek)
