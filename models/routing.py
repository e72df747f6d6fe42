"""Routing and credentials of the intake: org phone numbers, Meta accounts, signing secrets."""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import DateTime, LargeBinary, String, UniqueConstraint, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from leadline.errors import LeadlineError, NotFoundError
from models.audit import record_audit
from models.base import Base, now_column, org_fk, uuid_pk
from models.billing import AlreadyLinked
from models.channels import OrgPhoneNumber
from models.crypto import OrgCipher
from models.normalize import normalize_phone
from models.orgs import default_region
from models.tables import InboundEvent, Organization

SIGNING_TABLE = "intake_signing_secrets"
PREVIOUS_SECRET_GRACE = timedelta(hours=24)
MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")


class InvalidMessagingService(LeadlineError):
    """Not a Twilio Messaging Service SID."""


class MetaAccount(Base):
    """A Facebook page, Instagram account or WhatsApp business account owned by the org.

    Stored in clear: it is the business's own account id, needed before the org is known."""

    __tablename__ = "meta_accounts"

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    account_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = now_column()


class IntakeSigningSecret(Base):
    """The org's Standard Webhooks secret for signed POST /v1/leads (encrypted)."""

    __tablename__ = SIGNING_TABLE
    __table_args__ = (UniqueConstraint("org_id", name="uq_intake_signing_secrets_org"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    secret_ct: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    previous_secret_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = now_column()
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def _insert_owned(session: Session, row: OrgPhoneNumber | MetaAccount, what: str) -> None:
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise AlreadyLinked(f"that {what} already belongs to an organisation") from None


def add_phone_number(
    session: Session, org_id: uuid.UUID, raw_number: str, actor: str = "cli"
) -> str:
    """Tenant session. Returns the E.164 number; raises AlreadyLinked or InvalidPhoneNumber.

    A national number is read in the org's default region, refused without one."""
    number = normalize_phone(raw_number, default_region(session, org_id))
    _insert_owned(session, OrgPhoneNumber(org_id=org_id, number=number), "number")
    record_audit(session, actor, "number.added", org_id=org_id, target=number)
    return number


def list_phone_numbers(session: Session) -> list[str]:
    return list(session.scalars(select(OrgPhoneNumber.number).order_by(OrgPhoneNumber.number)))


def list_phone_number_services(session: Session) -> list[dict[str, str | None]]:
    """Tenant session: the org's numbers with the Messaging Service each sends through."""
    query = select(OrgPhoneNumber.number, OrgPhoneNumber.messaging_service_sid).order_by(
        OrgPhoneNumber.number
    )
    return [
        {"number": number, "messaging_service_sid": service}
        for number, service in session.execute(query).tuples()
    ]


def set_messaging_service(
    session: Session, org_id: uuid.UUID, raw_number: str, service: str | None, actor: str = "cli"
) -> str:
    """Tenant session: SMS from this number go through `service` (MG…) instead of `From`, or
    `From` again with None. Raises NotFoundError, InvalidMessagingService."""
    if service is not None and MESSAGING_SERVICE_SID.fullmatch(service) is None:
        raise InvalidMessagingService("a Messaging Service SID is MG followed by 32 hex digits")
    number = normalize_phone(raw_number, default_region(session, org_id))
    row = session.scalars(select(OrgPhoneNumber).where(OrgPhoneNumber.number == number)).first()
    if row is None:
        raise NotFoundError("the organisation has no such number (`leadline number list ORG`)")
    row.messaging_service_sid = service
    record_audit(
        session,
        actor,
        "number.messaging_service_set",
        org_id=org_id,
        target=number,
        details={"messaging_service_sid": service},
    )
    return number


def remove_phone_number(
    session: Session, org_id: uuid.UUID, raw_number: str, actor: str = "cli"
) -> str:
    """Tenant session: inbound SMS to the number stop routing to the org. Raises NotFoundError."""
    number = normalize_phone(raw_number)
    removed = session.execute(
        delete(OrgPhoneNumber).where(OrgPhoneNumber.number == number).returning(OrgPhoneNumber.id)
    ).first()
    if removed is None:
        raise NotFoundError("the organisation has no such number (`leadline number list ORG`)")
    record_audit(session, actor, "number.removed", org_id=org_id, target=number)
    return number


def org_for_number(session: Session, number: str) -> uuid.UUID | None:
    """Maintenance scope: route inbound SMS by the business number it was sent to."""
    org_id: uuid.UUID | None = session.scalar(
        select(OrgPhoneNumber.org_id).where(OrgPhoneNumber.number == number)
    )
    return org_id


def add_meta_account(
    session: Session, org_id: uuid.UUID, account_id: str, actor: str = "cli"
) -> None:
    _insert_owned(session, MetaAccount(org_id=org_id, account_id=account_id), "Meta account")
    record_audit(session, actor, "meta.account_added", org_id=org_id, target=account_id)


def remove_meta_account(
    session: Session, org_id: uuid.UUID, account_id: str, actor: str = "cli"
) -> None:
    """Tenant session: messages to the account stop routing to the org. Raises NotFoundError."""
    removed = session.execute(
        delete(MetaAccount).where(MetaAccount.account_id == account_id).returning(MetaAccount.id)
    ).first()
    if removed is None:
        raise NotFoundError("the organisation has no such Meta account (check ACCOUNT_ID)")
    record_audit(session, actor, "meta.account_removed", org_id=org_id, target=account_id)


def list_meta_accounts(session: Session) -> list[str]:
    return list(session.scalars(select(MetaAccount.account_id).order_by(MetaAccount.account_id)))


def org_for_meta_account(session: Session, account_ids: list[str]) -> uuid.UUID | None:
    """Maintenance scope: the org owning the page / Instagram / WhatsApp account."""
    if not account_ids:
        return None
    org_id: uuid.UUID | None = session.scalar(
        select(MetaAccount.org_id).where(MetaAccount.account_id.in_(account_ids)).limit(1)
    )
    return org_id


CLOSED_ORG_STATUSES = frozenset({"deleting", "deleted"})


def org_accepts_events(session: Session, org_id: uuid.UUID) -> bool:
    """Tenant session: the org exists and is not being deleted (its keys are gone)."""
    org = session.get(Organization, org_id)
    return org is not None and org.status not in CLOSED_ORG_STATUSES


def request_fingerprint(cipher: OrgCipher, canonical_request: str) -> bytes:
    """What an Idempotency-Key was first used with, to tell a retry from a different request.

    A keyed HMAC under the org's blind-index key, not a plain SHA-256: a lead is small and
    guessable (a phone number, a name), so an unkeyed hash would be a lookup table for PII.
    Crypto-shredding the org's keys leaves it meaningless like every other blind index."""
    return cipher.blind_index("request", canonical_request)


def new_signing_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def rotate_signing_secret(
    session: Session, cipher: OrgCipher, now: datetime, actor: str = "cli"
) -> str:
    """Create the org's secret, or replace it keeping the old one valid for 24 h."""
    org_id = cipher.org_id
    secret = new_signing_secret()
    row = session.scalars(
        select(IntakeSigningSecret).where(IntakeSigningSecret.org_id == org_id).with_for_update()
    ).first()
    if row is None:
        row = IntakeSigningSecret(id=uuid.uuid4(), org_id=org_id)
        session.add(row)
    else:
        old = cipher.decrypt_text(row.secret_ct, SIGNING_TABLE, "secret_ct", row.id)
        row.previous_secret_ct = cipher.encrypt_text(
            old, SIGNING_TABLE, "previous_secret_ct", row.id
        )
        row.previous_valid_until = now + PREVIOUS_SECRET_GRACE
        row.rotated_at = now
    row.secret_ct = cipher.encrypt(secret.encode(), SIGNING_TABLE, "secret_ct", row.id)
    session.flush()
    record_audit(session, actor, "intake.signing_secret_rotated", org_id=org_id)
    return secret


def signing_secrets(session: Session, cipher: OrgCipher, now: datetime) -> list[str]:
    """Tenant session: the secrets a signed request may use (current, then previous)."""
    row = session.scalars(
        select(IntakeSigningSecret).where(IntakeSigningSecret.org_id == cipher.org_id)
    ).first()
    if row is None:
        return []
    found = [cipher.decrypt(row.secret_ct, SIGNING_TABLE, "secret_ct", row.id).decode()]
    if row.previous_secret_ct and row.previous_valid_until and row.previous_valid_until > now:
        previous = cipher.decrypt(
            row.previous_secret_ct, SIGNING_TABLE, "previous_secret_ct", row.id
        )
        found.append(previous.decode())
    return found


def event_status(session: Session, event_id: uuid.UUID) -> tuple[str, uuid.UUID | None] | None:
    """Tenant session: an inbound event's status and the lead it became (once processed)."""
    row = session.execute(
        select(InboundEvent.status, InboundEvent.processed_lead_id).where(
            InboundEvent.id == event_id
        )
    ).first()
    return (row.status, row.processed_lead_id) if row is not None else None
