"""Opt-outs a business received outside SMS (by phone, email, in person) and records
(POST /v1/suppressions): the same path as a STOP (suppression, audit, `optout.changed`),
plus the business's note, encrypted. Only the person lifts it, by texting START."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from models.crypto import OrgCipher
from models.suppressions import (
    REPORTED_PREFIX,
    SuppressionRecord,
    annotate,
    find_suppression,
    phone_index,
)
from models.suppressions import (
    TABLE as SUPPRESSIONS_TABLE,
)
from tasks.after_commit import AfterCommit
from tasks.optouts import OptoutChange, lead_id_for, record_optout


@dataclass(frozen=True)
class RecordedOptout:
    suppression: SuppressionRecord
    created: bool  # False: the number was already suppressed (nothing changed)


def record_reported_optout(
    session: Session,
    cipher: OrgCipher,
    phone: str,
    channel: str,
    note: str | None,
    actor: str,
    after_commit: AfterCommit,
    now: datetime,
) -> RecordedOptout:
    """Tenant session. `phone` in E.164; `channel` one of REPORTED_CHANNELS."""
    bidx = phone_index(cipher, phone)
    lead_id = lead_id_for(session, bidx)
    reason = REPORTED_PREFIX + channel
    change = OptoutChange(session, cipher, bidx, reason, actor, after_commit, now, lead_id)
    created = record_optout(change)
    row = find_suppression(session, bidx)
    assert row is not None
    if created:
        annotate(cipher, row, note)
        session.flush()
    record = SuppressionRecord(
        row.id,
        lead_id,
        None,  # the answer does not repeat the number it was given
        row.reason,
        cipher.decrypt_text(row.note_ct, SUPPRESSIONS_TABLE, "note_ct", row.id),
        row.created_at,
    )
    return RecordedOptout(record, created)
