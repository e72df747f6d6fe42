"""Concurrent upserts for the same person: both consent texts kept, and one lead, never two."""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from models.leads import LeadFields, consent_evidence, phone_index, upsert_lead
from models.tables import Lead
from tests.support.messaging import random_phone
from tests.support.services import MakeOrg

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration


def upsert_together(context: TaskContext, org_id: uuid.UUID, phone: str, texts: list[str]) -> None:
    """One thread per text, released at once, each upserting in its own transaction."""
    start = threading.Barrier(len(texts))
    errors: list[BaseException] = []

    def post(text: str) -> None:
        fields = LeadFields(
            phone=phone, sms_consent=True, consent_text=text, consent_at=context.clock()
        )
        try:
            start.wait()
            with context.db.tenant(org_id) as session:
                upsert_lead(session, context.keys.cipher(session, org_id), fields)
        except BaseException as exc:  # reported by the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def evidence_of(context: TaskContext, org_id: uuid.UUID, phone: str) -> list[Any]:
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        [lead] = session.scalars(select(Lead).where(Lead.phone_bidx == phone_index(cipher, phone)))
        assert lead.sms_consent
        return consent_evidence(cipher, lead)


def test_concurrent_upserts_keep_both_consent_texts(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org = make_org()
    for _ in range(5):
        phone = random_phone()
        upsert_together(context, org.id, phone, ["I agree (web form)", "Yes, text me (chat)"])
        texts = {entry.text for entry in evidence_of(context, org.id, phone)}
        assert texts == {"I agree (web form)", "Yes, text me (chat)"}


def test_the_same_consent_text_again_is_kept_once(context: TaskContext, make_org: MakeOrg) -> None:
    org = make_org()
    phone = random_phone()
    upsert_together(context, org.id, phone, ["I agree", "I agree", "I agree"])
    [entry] = evidence_of(context, org.id, phone)
    assert (entry.text, entry.source) == ("I agree", "api")
    assert entry.at is not None


def test_an_upsert_waiting_on_the_identity_lock_finds_the_lead_committed_meanwhile(
    context: TaskContext, make_org: MakeOrg
) -> None:
    """The lock and the lookup go to the server in one flight; the lookup must still read a
    snapshot taken after the lock was granted, or the waiter would insert a second lead."""
    org = make_org()
    phone = random_phone()
    inserted, waiter_done = threading.Event(), threading.Event()
    results: list[bool] = []

    def waiter() -> None:
        inserted.wait(30)
        with context.db.tenant(org.id) as session:
            cipher = context.keys.cipher(session, org.id)
            results.append(upsert_lead(session, cipher, LeadFields(phone=phone)).created)
        waiter_done.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        with context.db.tenant(org.id) as session:
            cipher = context.keys.cipher(session, org.id)
            assert upsert_lead(session, cipher, LeadFields(phone=phone)).created
            inserted.set()
            # The waiter is blocked on this transaction's identity lock until it commits.
            assert not waiter_done.wait(1.0)
    finally:
        thread.join(30)
    assert results == [False]
    with context.db.tenant(org.id) as session:
        cipher = context.keys.cipher(session, org.id)
        query = select(Lead).where(Lead.phone_bidx == phone_index(cipher, phone))
        assert len(session.scalars(query).all()) == 1
