"""Data-key lifecycle: creation, unwrapping (with a short cache), rotation, shredding."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from leadline.errors import CryptoError, KeyNotFoundError
from models.crypto import Keyring, OrgCipher, new_key
from models.tables import OrgKey

CACHE_SECONDS = 60.0


def add_data_key(session: Session, keyring: Keyring, org_id: uuid.UUID, version: int) -> None:
    kek_id, wrapped = keyring.wrap(new_key(), org_id, version)
    session.add(OrgKey(org_id=org_id, version=version, kek_id=kek_id, wrapped_dek=wrapped))
    session.flush()


def load_cipher(session: Session, keyring: Keyring, org_id: uuid.UUID) -> OrgCipher:
    rows = session.scalars(select(OrgKey).where(OrgKey.org_id == org_id)).all()
    if not rows:
        raise KeyNotFoundError("organisation has no data key (deleted or never created)")
    deks = {
        row.version: keyring.unwrap(row.kek_id, row.wrapped_dek, org_id, row.version)
        for row in rows
    }
    return OrgCipher(org_id=org_id, deks=deks)


def org_data_keys(
    session: Session, keyring: Keyring
) -> tuple[dict[uuid.UUID, dict[int, bytes]], set[uuid.UUID]]:
    """Every organisation's unwrapped DEKs by version (maintenance scope; for the escrow), and
    the organisations whose keys are under a master key that is not configured."""
    deks: dict[uuid.UUID, dict[int, bytes]] = {}
    unreadable: set[uuid.UUID] = set()
    for row in session.scalars(select(OrgKey).order_by(OrgKey.org_id, OrgKey.version)):
        try:
            dek = keyring.unwrap(row.kek_id, row.wrapped_dek, row.org_id, row.version)
        except CryptoError:
            unreadable.add(row.org_id)
            continue
        deks.setdefault(row.org_id, {})[row.version] = dek
    return {org: keys for org, keys in deks.items() if org not in unreadable}, unreadable


def install_data_keys(
    session: Session, keyring: Keyring, org_id: uuid.UUID, deks: dict[int, bytes]
) -> None:
    """Put known DEKs back (a restore from the escrow), wrapped under the primary KEK."""
    for version, dek in sorted(deks.items()):
        kek_id, wrapped = keyring.wrap(dek, org_id, version)
        session.add(OrgKey(org_id=org_id, version=version, kek_id=kek_id, wrapped_dek=wrapped))
    session.flush()


def rotate_master(session: Session, keyring: Keyring) -> int:
    """Re-wrap every DEK not yet under the primary KEK. Data is untouched. Maintenance scope."""
    rewrapped = 0
    stale = select(OrgKey).where(OrgKey.kek_id != keyring.primary_id)
    for row in session.scalars(stale.with_for_update()).all():
        dek = keyring.unwrap(row.kek_id, row.wrapped_dek, row.org_id, row.version)
        row.kek_id, row.wrapped_dek = keyring.wrap(dek, row.org_id, row.version)
        rewrapped += 1
    return rewrapped


def rotate_org_key(session: Session, keyring: Keyring, org_id: uuid.UUID) -> int:
    """Add a new DEK version for new data; older versions keep decrypting old data."""
    versions = session.scalars(
        select(OrgKey.version).where(OrgKey.org_id == org_id).with_for_update()
    ).all()
    if not versions:
        raise KeyNotFoundError("organisation has no data key")
    new_version = max(versions) + 1
    add_data_key(session, keyring, org_id, new_version)
    return new_version


def shred_org_keys(session: Session, org_id: uuid.UUID) -> int:
    """Crypto-shredding: once committed, nothing encrypted for the org can be read again."""
    result = session.execute(delete(OrgKey).where(OrgKey.org_id == org_id))
    return int(result.rowcount)  # type: ignore[attr-defined]


class KeyCache:
    """Unwrapped ciphers per organisation, kept for a short time to spare a query per call."""

    def __init__(
        self,
        keyring: Keyring,
        ttl: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keyring = keyring
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[uuid.UUID, tuple[float, OrgCipher]] = {}
        self._lock = threading.Lock()

    def cipher(self, session: Session, org_id: uuid.UUID) -> OrgCipher:
        now = self.clock()
        with self._lock:
            entry = self._entries.get(org_id)
        if entry and now - entry[0] < self.ttl:
            return entry[1]
        cipher = load_cipher(session, self.keyring, org_id)
        with self._lock:
            self._entries[org_id] = (now, cipher)
        return cipher

    def forget(self, org_id: uuid.UUID | None = None) -> None:
        with self._lock:
            if org_id is None:
                self._entries.clear()
            else:
                self._entries.pop(org_id, None)
