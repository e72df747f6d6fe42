"""Leads: encrypted on write, deduplicated by blind index, decrypted on read."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from enum import Enum
from functools import cache
from typing import Protocol, cast

from psycopg import sql
from sqlalchemy import Table, func, insert, or_, select
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from leadline.errors import NotFoundError
from models.crypto import OrgCipher
from models.db import execute_flight, insert_statement, psycopg_execute, render
from models.normalize import normalize_email, normalize_phone
from models.tables import Lead

TABLE = "leads"
CONSENT_EVIDENCE_MAX = 20
PHONE_INDEX = "phone"
PLATFORM_INDEX = "platform"
EMAIL_INDEX = "email"
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_LEADS = cast(Table, Lead.__table__)
_COLUMNS = tuple(column.key for column in _LEADS.c)
_FILLED = ("created_at", "updated_at")  # by the database, on INSERT
_RETURNING_FILLED = "RETURNING " + ", ".join(_FILLED)
# The columns' Python-side defaults (status, consents), which the ORM or Core would apply.
_DEFAULTS = {
    column.key: column.default.arg
    for column in _LEADS.c
    if isinstance(column.default, ScalarElementColumnDefault)
}


@dataclass(frozen=True)
class LeadFields:
    """Plaintext lead data as received (already validated)."""

    name: str | None = None
    phone: str | None = None
    email: str | None = None
    message: str | None = None
    # When the message was sent (timezone-aware), if the source says: an earlier message
    # replaces a later first message, since one person's messages may be processed in any order.
    message_at: datetime | None = None
    platform_user: str | None = None
    # A Meta message: the business account it was sent to, and when (the lead can be
    # answered there; WhatsApp only within 24 hours of the latest one).
    platform_account: str | None = None
    platform_inbound_at: datetime | None = None
    source: str = "api"
    sms_consent: bool = False
    email_consent: bool = False
    consent_text: str | None = None
    consent_at: datetime | None = None
    # Where the consent was given, when not the lead's source (an imported list says so).
    consent_source: str | None = None
    consent_details: ConsentDetails | None = None
    # The phone is what a validator already normalised (the intake's, for API leads): kept
    # as it is when it has the E.164 shape, instead of being parsed and validated again.
    phone_normalized: bool = False


@dataclass(frozen=True)
class ConsentDetails:
    """Where and how a consent was given (already validated): the visitor's IP address and
    browser, the page and the form it was given on."""

    ip: str | None = None
    user_agent: str | None = None
    page_url: str | None = None
    form_id: str | None = None


@dataclass(frozen=True)
class ConsentEvidence:
    """One consent given by a lead: the text shown (and its SHA-256, hex), when (ISO 8601),
    through what source, and where (ConsentDetails). Stored encrypted with the lead."""

    text: str | None
    at: str | None
    source: str
    text_sha256: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    page_url: str | None = None
    form_id: str | None = None

    def same_consent(self, other: ConsentEvidence) -> bool:
        """The same text given the same way (a resubmitted form): kept once."""
        return _consent_key(self) == _consent_key(other)


def _consent_key(entry: ConsentEvidence) -> tuple[str | None, ...]:
    return (entry.text, entry.ip, entry.user_agent, entry.page_url, entry.form_id)


def text_sha256(text: str | None) -> str | None:
    return hashlib.sha256(text.encode()).hexdigest() if text is not None else None


@dataclass(frozen=True)
class LeadView:
    """A decrypted lead, for code that needs the plaintext (alerts, exports)."""

    id: uuid.UUID
    org_id: uuid.UUID
    name: str | None
    phone: str | None
    email: str | None
    first_message: str | None
    source: str
    status: str
    sms_consent: bool
    created_at: datetime
    email_consent: bool = False


@dataclass(frozen=True)
class UpsertResult:
    lead: Lead
    created: bool


def phone_index(cipher: OrgCipher, phone: str) -> bytes:
    """The blind index of a phone number: the same for leads, alert numbers, outbound SMS and
    opt-outs, so one lookup finds the person everywhere."""
    return cipher.blind_index(PHONE_INDEX, normalize_phone(phone))


def platform_index(cipher: OrgCipher, platform_user: str) -> bytes:
    """The blind index of a Messenger, Instagram or WhatsApp user (`platform:user id`)."""
    return cipher.blind_index(PLATFORM_INDEX, platform_user)


def email_index(cipher: OrgCipher, email: str) -> bytes:
    """The blind index of an email address (casefolded): the same for leads, alert emails,
    outbound email and email suppressions."""
    return cipher.blind_index(EMAIL_INDEX, normalize_email(email))


def blind_indexes(cipher: OrgCipher, fields: LeadFields) -> dict[str, bytes | None]:
    return _blind_indexes(cipher, fields, _e164(fields))


def _e164(fields: LeadFields) -> str | None:
    if not fields.phone:
        return None
    if fields.phone_normalized and _E164.fullmatch(fields.phone):
        return fields.phone
    return normalize_phone(fields.phone)


def _blind_indexes(
    cipher: OrgCipher, fields: LeadFields, phone: str | None
) -> dict[str, bytes | None]:
    email = normalize_email(fields.email) if fields.email else None
    return {
        "phone_bidx": cipher.blind_index(PHONE_INDEX, phone) if phone else None,
        "email_bidx": cipher.blind_index(EMAIL_INDEX, email) if email else None,
        "platform_bidx": (
            platform_index(cipher, fields.platform_user) if fields.platform_user else None
        ),
    }


def upsert_lead(session: Session, cipher: OrgCipher, fields: LeadFields) -> UpsertResult:
    """The org's lead with this phone, email or platform id, created or completed."""
    phone = _e164(fields)  # parsing and validating a number is costly: once per upsert
    indexes = _blind_indexes(cipher, fields, phone)
    existing = _lock_and_find(session, cipher.org_id, indexes)
    if existing is None:
        return UpsertResult(_insert_lead(session, cipher, fields, phone, indexes), created=True)
    _complete_lead(session, cipher, existing, fields, phone, indexes)
    return UpsertResult(existing, created=False)


# One round trip for all of a lead's identities; unnest yields the keys in array order, so
# the locks are taken in sorted order and two workers never wait on each other in a cycle.
_LOCK_IDENTITIES_SQL = (
    "SELECT pg_advisory_xact_lock(hashtextextended(identity_key, 0)) "
    "FROM unnest(CAST(%s AS text[])) AS identities(identity_key)"
)


def lock_identities(session: Session, org_id: uuid.UUID, indexes: Iterable[bytes | None]) -> None:
    """Serialises concurrent workers that upsert the same person, so both don't insert."""
    keys = _identity_keys(org_id, indexes)
    if keys:
        psycopg_execute(session, _LOCK_IDENTITIES_SQL, (keys,)).fetchall()


def _identity_keys(org_id: uuid.UUID, indexes: Iterable[bytes | None]) -> list[str]:
    values = sorted({v for v in indexes if v is not None})
    return [f"{org_id}:{value.hex()}" for value in values]


@dataclass(frozen=True)
class PreparedLead:
    """Lead fields with the phone in E.164 and the blind indexes computed, once."""

    fields: LeadFields
    phone: str | None
    indexes: dict[str, bytes | None]


def prepare_lead(cipher: OrgCipher, fields: LeadFields, validated: bool = False) -> PreparedLead:
    """`validated`: the phone is already the E.164 form normalize_phone gave (parsing and
    validating a number is the costliest step of an imported row: once per row)."""
    phone = fields.phone if validated else _e164(fields)
    return PreparedLead(fields, phone, _blind_indexes(cipher, fields, phone))


def new_lead_values(cipher: OrgCipher, lead: PreparedLead) -> dict[str, object]:
    """The columns of a lead not stored yet, encrypted as upsert_lead writes them, for
    inserting many at once (insert_leads). The caller holds the identities' locks
    (lock_identities) and has checked that no stored lead has them (known_indexes)."""
    _, values = _new_lead(cipher, lead.fields, lead.phone, lead.indexes)
    return {column: value for column, value in values.items() if column not in _FILLED}


def insert_leads(session: Session, rows: list[dict[str, object]]) -> None:
    """Multi-row INSERTs of a thousand leads (SQLAlchemy Core's insertmanyvalues). Not the
    ORM's bulk insert: it leaves out None values, and splits the rows into one statement per
    run of rows with the same columns set."""
    if rows:
        session.execute(insert(_LEADS), rows)


def known_indexes(session: Session, phones: list[bytes], emails: list[bytes]) -> set[bytes]:
    """Which of these phone and email blind indexes a stored lead of the org already has."""
    query = select(Lead.phone_bidx, Lead.email_bidx).where(
        or_(Lead.phone_bidx.in_(phones), Lead.email_bidx.in_(emails))
    )
    found: set[bytes] = set()
    for phone, email in session.execute(query):
        found.update(value for value in (phone, email) if value is not None)
    return found


def _lock_and_find(
    session: Session, org_id: uuid.UUID, indexes: dict[str, bytes | None]
) -> Lead | None:
    """The identities' locks (lock_identities), then the oldest lead holding any of them,
    locked (SELECT ... FOR UPDATE), in one round trip; the ORM object is built only when a
    lead is found. The SELECT is a statement of its own after the locks, so it reads a
    snapshot taken once they are held (READ COMMITTED takes one per statement): a lead that
    a concurrent worker committed while this one waited is found."""
    present = {column: value for column, value in indexes.items() if value is not None}
    if not present:
        return None
    locks = render(_LOCK_IDENTITIES_FLIGHT, _identity_keys(org_id, present.values()))
    find = render(_locked_lead_sql(tuple(present)), *present.values())
    found = execute_flight(session, f"{locks}; {find}").fetchone()
    if found is None:
        return None
    values = dict(zip(_COLUMNS, found, strict=True))
    known = session.identity_map.get(session.identity_key(Lead, (values["id"],)))
    return known if isinstance(known, Lead) else _persistent(session, Lead(), values)


_LOCK_IDENTITIES_FLIGHT = _LOCK_IDENTITIES_SQL.replace("%s", "{}")


@cache
def _locked_lead_sql(columns: tuple[str, ...]) -> str:
    # Rendered once per combination of identities (a few), not per event; its `{}` are for
    # `render`.
    matches = sql.SQL(" OR ").join(sql.SQL("{} = {{}}").format(sql.Identifier(c)) for c in columns)
    query = sql.SQL(
        "SELECT {columns} FROM leads WHERE {matches} ORDER BY created_at LIMIT 1 FOR UPDATE"
    )
    return query.format(columns=_column_list(_COLUMNS), matches=matches).as_string(None)


def _column_list(columns: Iterable[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(column) for column in columns)


def _persistent(session: Session, lead: Lead, row: Mapping[str, object]) -> Lead:
    """`lead` holding the row's values (every column), in the session as a loaded, unchanged
    row: later changes to it are flushed as UPDATEs, session.get finds it without a SELECT."""
    for column, value in row.items():
        setattr(lead, column, value)
    make_transient_to_detached(lead)
    session.add(lead)
    return lead


def _insert_lead(
    session: Session,
    cipher: OrgCipher,
    fields: LeadFields,
    phone: str | None,
    indexes: dict[str, bytes | None],
) -> Lead:
    # INSERT ... RETURNING on psycopg instead of the unit of work's flush (which was most of
    # an event's CPU); the timestamps come back.
    lead, values = _new_lead(cipher, fields, phone, indexes)
    # psycopg sends an enum member's name: a StrEnum source goes as its value.
    present = {
        key: value.value if isinstance(value, Enum) else value
        for key, value in values.items()
        if value is not None
    }
    query = insert_statement("leads", tuple(present), _RETURNING_FILLED)
    filled = psycopg_execute(session, query, tuple(present.values())).fetchone()
    assert filled is not None
    values.update(zip(_FILLED, filled, strict=True))
    return _persistent(session, lead, values)


def _new_lead(
    cipher: OrgCipher, fields: LeadFields, phone: str | None, indexes: dict[str, bytes | None]
) -> tuple[Lead, dict[str, object]]:
    """A new lead's row (not stored) and its columns' values, encrypted, with the columns' own
    defaults filled in: one way to write a new lead, whether one or a thousand at a time."""
    lead = Lead(id=uuid.uuid4(), org_id=cipher.org_id, source=fields.source, **indexes)
    _write_fields(cipher, lead, fields, phone, overwrite=True)
    values = {column: getattr(lead, column) for column in _COLUMNS}
    for column, default in _DEFAULTS.items():
        if values[column] is None:
            values[column] = default
    return lead, values


def _complete_lead(
    session: Session,
    cipher: OrgCipher,
    lead: Lead,
    fields: LeadFields,
    phone: str | None,
    indexes: dict[str, bytes | None],
) -> None:
    for column, value in indexes.items():
        if value is not None and getattr(lead, column) is None:
            setattr(lead, column, value)
    _write_fields(cipher, lead, fields, phone, overwrite=False)
    lead.updated_at = func.now()
    session.flush()


def _write_fields(
    cipher: OrgCipher, lead: Lead, fields: LeadFields, phone: str | None, overwrite: bool
) -> None:
    values = {
        "name_ct": fields.name,
        "phone_ct": phone,
        "email_ct": fields.email.strip() if fields.email else None,
    }
    for column, plaintext in values.items():
        if plaintext is not None and (overwrite or getattr(lead, column) is None):
            setattr(lead, column, cipher.encrypt_text(plaintext, TABLE, column, lead.id))
    if fields.message is not None and (overwrite or _sent_before_first(lead, fields)):
        lead.first_message_ct = cipher.encrypt_text(
            fields.message, TABLE, "first_message_ct", lead.id
        )
        lead.first_message_at = fields.message_at
    if fields.sms_consent:
        _merge_consent(cipher, lead, fields)
    if fields.email_consent and fields.email:
        _merge_email_consent(cipher, lead, fields)
    if fields.platform_user is not None:
        _write_platform(cipher, lead, fields)


def _write_platform(cipher: OrgCipher, lead: Lead, fields: LeadFields) -> None:
    """Where to answer: the platform id once, the account and time of the latest message
    (messages arrive in any order, so an older one never moves the time back)."""
    if lead.platform_user_ct is None:
        lead.platform_user_ct = cipher.encrypt_text(
            fields.platform_user, TABLE, "platform_user_ct", lead.id
        )
    latest, incoming = lead.platform_last_inbound_at, fields.platform_inbound_at
    if incoming is not None and (latest is None or incoming >= latest):
        lead.platform_last_inbound_at = incoming
        lead.platform_account = fields.platform_account or lead.platform_account
    elif lead.platform_account is None:
        lead.platform_account = fields.platform_account


def _sent_before_first(lead: Lead, fields: LeadFields) -> bool:
    """Whether this message should be the lead's first: it has none yet, or this one was sent
    earlier than it. Runs under the lead's row lock, so of concurrent messages the earliest wins.
    A first message without a send time (older rows, sources that give none) is kept."""
    if lead.first_message_ct is None:
        return True
    recorded, incoming = lead.first_message_at, fields.message_at
    return recorded is not None and incoming is not None and incoming < recorded


def _merge_consent(cipher: OrgCipher, lead: Lead, fields: LeadFields) -> None:
    """Add this submission's consent to the lead's evidence. Runs under the lead's row lock
    (or on a row not yet visible to anyone), so concurrent posts for one phone keep every text.
    Every consent, even one already on record, renews `last_consent_at`."""
    if not lead.sms_consent:
        lead.sms_consent = True
        lead.consent_at = fields.consent_at
        lead.consent_source = fields.consent_source or fields.source
    if fields.consent_at is not None and (
        lead.last_consent_at is None or fields.consent_at > lead.last_consent_at
    ):
        lead.last_consent_at = fields.consent_at
    _add_evidence(cipher, lead, fields)


def _merge_email_consent(cipher: OrgCipher, lead: Lead, fields: LeadFields) -> None:
    """Email consent is kept apart from SMS consent (one never implies the other); its wording
    joins the same evidence list."""
    if not lead.email_consent:
        lead.email_consent = True
        lead.email_consent_at = fields.consent_at
    _add_evidence(cipher, lead, fields)


def _add_evidence(cipher: OrgCipher, lead: Lead, fields: LeadFields) -> None:
    evidence = consent_evidence(cipher, lead)
    entry = _new_evidence(fields)
    if any(entry.same_consent(known) for known in evidence) or (_bare(entry) and evidence):
        return
    evidence.append(entry)
    lead.consent_text_ct = _evidence_ct(cipher, lead.id, evidence)


def _new_evidence(fields: LeadFields) -> ConsentEvidence:
    details = fields.consent_details or ConsentDetails()
    at = fields.consent_at.isoformat() if fields.consent_at else None
    return ConsentEvidence(
        fields.consent_text,
        at,
        fields.consent_source or fields.source,
        text_sha256(fields.consent_text),
        details.ip,
        details.user_agent,
        details.page_url,
        details.form_id,
    )


def _bare(entry: ConsentEvidence) -> bool:
    """A consent that says nothing but `sms: true`: adds nothing to evidence already kept."""
    return _consent_key(entry) == (None,) * 5


def _evidence_ct(cipher: OrgCipher, lead_id: uuid.UUID, evidence: list[ConsentEvidence]) -> bytes:
    document = {"evidence": [asdict(entry) for entry in evidence[-CONSENT_EVIDENCE_MAX:]]}
    return cipher.encrypt(json.dumps(document).encode(), TABLE, "consent_text_ct", lead_id)


def consent_evidence(cipher: OrgCipher, lead: Lead) -> list[ConsentEvidence]:
    """Every consent the lead gave (oldest first); a pre-merge row holds one plain text.
    Entries stored before the hash was kept get it computed."""
    stored = decrypted_column(cipher, lead, "consent_text_ct")
    if stored is None:
        return []
    try:
        document = json.loads(stored)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("evidence"), list):
        entries = [ConsentEvidence(**entry) for entry in document["evidence"]]
    else:
        at = lead.consent_at.isoformat() if lead.consent_at else None
        entries = [ConsentEvidence(stored, at, lead.consent_source or lead.source)]
    return [
        entry
        if entry.text_sha256 or entry.text is None
        else replace(entry, text_sha256=text_sha256(entry.text))
        for entry in entries
    ]


class StoredLead(Protocol):
    """A leads row, as the ORM object or a Core row: what its encrypted columns are bound to."""

    @property
    def id(self) -> uuid.UUID: ...


def decrypted_column(cipher: OrgCipher, lead: StoredLead, column: str) -> str | None:
    """The lead's encrypted `column` (name_ct, phone_ct, ...) decrypted."""
    value: bytes | None = getattr(lead, column)
    return cipher.decrypt_text(value, TABLE, column, lead.id)


def decrypt_lead(cipher: OrgCipher, lead: Lead) -> LeadView:
    plain = functools.partial(decrypted_column, cipher, lead)

    return LeadView(
        id=lead.id,
        org_id=lead.org_id,
        name=plain("name_ct"),
        phone=plain("phone_ct"),
        email=plain("email_ct"),
        first_message=plain("first_message_ct"),
        source=lead.source,
        status=lead.status,
        sms_consent=lead.sms_consent,
        created_at=lead.created_at,
        email_consent=lead.email_consent,
    )


def get_lead(session: Session, cipher: OrgCipher, lead_id: uuid.UUID) -> LeadView:
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise NotFoundError("lead not found")
    return decrypt_lead(cipher, lead)
