"""Master-key rotation re-wraps data keys; the old KEK can then be removed."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from leadline.settings import Settings, parse_master_keys
from models.crypto import Keyring
from models.keys import load_cipher, rotate_master, rotate_org_key
from models.leads import LeadFields, get_lead, upsert_lead
from tests.support.services import MakeOrg

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration


def test_rotate_master_then_drop_old_kek(
    context: TaskContext, make_org: MakeOrg, settings: Settings
) -> None:
    org = make_org()
    with context.db.tenant(org.id) as session:
        cipher = context.keys.cipher(session, org.id)
        lead_id = upsert_lead(session, cipher, LeadFields(phone="+14155550160", name="Rot")).lead.id
    old = tuple(parse_master_keys(settings.leadline_master_keys.get_secret_value()))
    new_primary = ("rotated", os.urandom(32))
    try:
        with context.db.maintenance() as session:
            assert rotate_master(session, Keyring(keys=(new_primary, *old))) >= 1
        only_new = Keyring(keys=(new_primary,))
        with context.db.tenant(org.id) as session:
            view = get_lead(session, load_cipher(session, only_new, org.id), lead_id)
        assert (view.phone, view.name) == ("+14155550160", "Rot")
        with context.db.maintenance() as session:
            assert rotate_master(session, only_new) == 0
    finally:
        with context.db.maintenance() as session:
            rotate_master(session, Keyring(keys=(*old, new_primary)))


def test_new_org_key_version_keeps_old_data_readable(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org = make_org()
    with context.db.tenant(org.id) as session:
        cipher = context.keys.cipher(session, org.id)
        old_lead = upsert_lead(session, cipher, LeadFields(email="old@example.com")).lead.id
    with context.db.tenant(org.id) as session:
        assert rotate_org_key(session, context.keyring, org.id) == 2
    context.keys.forget(org.id)
    with context.db.tenant(org.id) as session:
        cipher = context.keys.cipher(session, org.id)
        assert cipher.current_version == 2
        new_lead = upsert_lead(session, cipher, LeadFields(email="new@example.com")).lead
        assert new_lead.email_ct is not None and new_lead.email_ct[1:5] == (2).to_bytes(4, "big")
        assert get_lead(session, cipher, old_lead).email == "old@example.com"
        # the blind index survives rotation: the old lead is still found by its email
        again = upsert_lead(session, cipher, LeadFields(email="OLD@example.com"))
        assert again.lead.id == old_lead and not again.created
