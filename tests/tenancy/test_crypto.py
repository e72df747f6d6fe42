from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadline.errors import CryptoError, KeyNotFoundError
from models.crypto import Keyring, OrgCipher, new_key

pytestmark = pytest.mark.unit

ORG = uuid.uuid4()


def cipher(org: uuid.UUID = ORG) -> OrgCipher:
    return OrgCipher(org_id=org, deks={1: new_key()})


@given(st.binary(max_size=2048))
def test_round_trip(plaintext: bytes) -> None:
    c = cipher()
    row = uuid.uuid4()
    assert c.decrypt(c.encrypt(plaintext, "leads", "name_ct", row), "leads", "name_ct", row) == (
        plaintext
    )


def test_nonce_is_random_per_value() -> None:
    c = cipher()
    row = uuid.uuid4()
    assert c.encrypt(b"same", "t", "c", row) != c.encrypt(b"same", "t", "c", row)


@pytest.mark.parametrize(
    ("table", "column", "row"),
    [("other", "name_ct", None), ("leads", "phone_ct", None), ("leads", "name_ct", uuid.uuid4())],
)
def test_ciphertext_is_bound_to_table_column_and_row(
    table: str, column: str, row: uuid.UUID | None
) -> None:
    c = cipher()
    original_row = uuid.uuid4()
    value = c.encrypt(b"Ada", "leads", "name_ct", original_row)
    with pytest.raises(CryptoError):
        c.decrypt(value, table, column, row or original_row)


def test_ciphertext_is_bound_to_org_even_with_the_same_key() -> None:
    key = new_key()
    row = uuid.uuid4()
    value = OrgCipher(org_id=ORG, deks={1: key}).encrypt(b"Ada", "leads", "name_ct", row)
    with pytest.raises(CryptoError):
        OrgCipher(org_id=uuid.uuid4(), deks={1: key}).decrypt(value, "leads", "name_ct", row)


def test_tampering_is_detected() -> None:
    c = cipher()
    row = uuid.uuid4()
    value = bytearray(c.encrypt(b"Ada", "leads", "name_ct", row))
    value[-1] ^= 1
    with pytest.raises(CryptoError):
        c.decrypt(bytes(value), "leads", "name_ct", row)


def test_missing_key_version_is_a_clear_error() -> None:
    row = uuid.uuid4()
    value = OrgCipher(org_id=ORG, deks={1: new_key(), 2: new_key()}).encrypt(b"x", "t", "c", row)
    with pytest.raises(KeyNotFoundError, match="version 2"):
        OrgCipher(org_id=ORG, deks={1: new_key()}).decrypt(value, "t", "c", row)


def test_blind_index_is_keyed_and_stable_across_versions() -> None:
    first = new_key()
    v1 = OrgCipher(org_id=ORG, deks={1: first})
    v2 = OrgCipher(org_id=ORG, deks={1: first, 2: new_key()})
    assert v1.blind_index("phone", "+14155550100") == v2.blind_index("phone", "+14155550100")
    assert v1.blind_index("phone", "+14155550100") != cipher().blind_index("phone", "+14155550100")
    assert len(v1.blind_index("email", "a@b.c")) == 16


def test_keyring_wraps_under_primary_and_unwraps_old() -> None:
    old = Keyring(keys=(("k1", os.urandom(32)),))
    dek = new_key()
    kid, wrapped = old.wrap(dek, ORG, 1)
    assert kid == "k1"
    both = Keyring(keys=(("k2", os.urandom(32)), old.keys[0]))
    assert both.unwrap(kid, wrapped, ORG, 1) == dek
    assert both.wrap(dek, ORG, 1)[0] == "k2"
    with pytest.raises(CryptoError):
        both.unwrap(kid, wrapped, ORG, 2)
    with pytest.raises(KeyNotFoundError):
        Keyring(keys=(("k3", os.urandom(32)),)).unwrap(kid, wrapped, ORG, 1)
