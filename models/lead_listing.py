"""Reading leads for the tenant API: filtered, keyset-paginated pages decrypted in one pass
(one cipher for the page, no key loads per row), and one lead by id."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from models.crypto import OrgCipher
from models.leads import ConsentEvidence, consent_evidence, decrypted_column
from models.pagination import Position, after
from models.tables import Lead

LEAD_STATUSES = ("new", "contacted", "qualified", "won", "lost")


@dataclass(frozen=True)
class LeadFilter:
    """Exact matches only: the data is encrypted, phone and email through blind indexes."""

    status: str | None = None
    source: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    sms_consent: bool | None = None
    phone_bidx: bytes | None = None
    email_bidx: bytes | None = None


@dataclass(frozen=True)
class LeadRecord:
    """A decrypted lead as the tenant API shows it."""

    id: uuid.UUID
    name: str | None
    phone: str | None
    email: str | None
    first_message: str | None
    source: str
    status: str
    assignee: str | None
    sms_consent: bool
    consent_at: datetime | None
    created_at: datetime
    updated_at: datetime
    # Decrypted for one lead (find_lead), not for pages of them.
    consent_evidence: list[ConsentEvidence] | None = None


def conditions(where: LeadFilter) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if where.status is not None:
        found.append(Lead.status == where.status)
    if where.source is not None:
        found.append(Lead.source == where.source)
    if where.created_after is not None:
        found.append(Lead.created_at > where.created_after)
    if where.created_before is not None:
        found.append(Lead.created_at < where.created_before)
    if where.sms_consent is not None:
        found.append(Lead.sms_consent.is_(where.sms_consent))
    if where.phone_bidx is not None:
        found.append(Lead.phone_bidx == where.phone_bidx)
    if where.email_bidx is not None:
        found.append(Lead.email_bidx == where.email_bidx)
    return found


class LeadColumns(Protocol):
    """A lead row: the ORM object, or a Core row of the columns a record needs."""

    id: uuid.UUID
    source: str
    status: str
    sms_consent: bool
    consent_at: datetime | None
    created_at: datetime
    updated_at: datetime


RECORD_COLUMNS = (
    Lead.id,
    Lead.name_ct,
    Lead.phone_ct,
    Lead.email_ct,
    Lead.first_message_ct,
    Lead.assignee_ct,
    Lead.source,
    Lead.status,
    Lead.sms_consent,
    Lead.consent_at,
    Lead.created_at,
    Lead.updated_at,
)


def list_leads(
    session: Session,
    cipher: OrgCipher,
    where: LeadFilter,
    position: Position | None,
    limit: int,
) -> list[LeadRecord]:
    """Tenant session: up to `limit` leads, newest first, after `position`: plain rows of the
    columns shown (no ORM objects), decrypted with the one cipher."""
    query = select(*RECORD_COLUMNS).where(*conditions(where))
    if position is not None:
        query = query.where(after(Lead.created_at, Lead.id, position, newest_first=True))
    query = query.order_by(Lead.created_at.desc(), Lead.id.desc()).limit(limit)
    return decrypt_page(cipher, session.execute(query).all())


def find_lead(session: Session, cipher: OrgCipher, lead_id: uuid.UUID) -> LeadRecord | None:
    """One lead with its consent evidence."""
    lead = session.get(Lead, lead_id)
    if lead is None:
        return None
    return replace(lead_record(cipher, lead), consent_evidence=consent_evidence(cipher, lead))


def decrypt_page(cipher: OrgCipher, leads: Sequence[LeadColumns]) -> list[LeadRecord]:
    return [lead_record(cipher, lead) for lead in leads]


def lead_record(cipher: OrgCipher, lead: LeadColumns) -> LeadRecord:
    plain = functools.partial(decrypted_column, cipher, lead)

    return LeadRecord(
        id=lead.id,
        name=plain("name_ct"),
        phone=plain("phone_ct"),
        email=plain("email_ct"),
        first_message=plain("first_message_ct"),
        source=lead.source,
        status=lead.status,
        assignee=plain("assignee_ct"),
        sms_consent=lead.sms_consent,
        consent_at=lead.consent_at,
        created_at=lead.created_at,
        updated_at=lead.updated_at,
    )
