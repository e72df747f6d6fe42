"""Organisations and their API keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from leadline.errors import LeadlineError, NotFoundError
from models.audit import record_audit
from models.crypto import Keyring
from models.keys import add_data_key
from models.normalize import normalize_region, sender_address
from models.tables import ApiKey, Lead, Organization

API_KEY_PREFIX = "ll_"
# Least to most powerful; what each may do is intake/permissions.py's table.
Role = Literal["ingest", "member", "admin", "owner"]
ROLES: tuple[Role, ...] = get_args(Role)
# A key replaced by a rotation keeps working this long, so its users can switch over.
ROTATION_OVERLAP = timedelta(hours=24)
MAX_LABEL = 100


class InvalidApiKeyRequest(LeadlineError, ValueError):
    """An unknown role, a label that is too long, or a key to replace that is not active."""


@dataclass(frozen=True)
class NewApiKey:
    id: uuid.UUID
    org_id: uuid.UUID
    prefix: str
    key: str
    role: Role = "owner"
    label: str | None = None
    created_at: datetime | None = None
    replaced_until: datetime | None = None  # the replaced key's end of overlap, if any


@dataclass(frozen=True)
class ResolvedKey:
    """An active key's organisation, what it may do, and until when (a rotated key)."""

    org_id: uuid.UUID
    role: Role
    expires_at: datetime | None = None


def parse_role(value: str) -> Role:
    for role in ROLES:
        if value == role:
            return role
    raise InvalidApiKeyRequest(f"role must be one of {', '.join(ROLES)}")


def create_organization(
    session: Session, keyring: Keyring, org_id: uuid.UUID, name: str, actor: str = "cli"
) -> None:
    """Insert an organisation with its first data key, in a tenant session for `org_id`."""
    session.add(Organization(id=org_id, name=name))
    session.flush()
    add_data_key(session, keyring, org_id, version=1)
    record_audit(session, actor, "org.created", org_id=org_id, target=str(org_id))


def hash_api_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def create_api_key(
    session: Session,
    org_id: uuid.UUID,
    actor: str = "cli",
    role: Role = "owner",
    label: str | None = None,
) -> NewApiKey:
    """A random key, shown once; only its SHA-256 and a visible prefix are stored."""
    role = parse_role(role)
    if label is not None and len(label) > MAX_LABEL:
        raise InvalidApiKeyRequest(f"label must be at most {MAX_LABEL} characters")
    prefix = API_KEY_PREFIX + secrets.token_hex(4)
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(org_id=org_id, prefix=prefix, key_hash=hash_api_key(key), role=role, label=label)
    session.add(row)
    session.flush()
    session.refresh(row, ["created_at"])
    record_audit(
        session, actor, "apikey.created", org_id=org_id, target=prefix, details={"role": role}
    )
    return NewApiKey(row.id, org_id, prefix, key, role, label, row.created_at)


def rotate_api_key(
    session: Session, org_id: uuid.UUID, prefix: str, now: datetime, actor: str = "cli"
) -> NewApiKey:
    """Tenant session: a new key with the role and label of the active key `prefix`, which
    keeps working for ROTATION_OVERLAP more (raises NotFoundError for no such active key)."""
    old = session.scalars(
        select(ApiKey).where(ApiKey.prefix == prefix, active_key(now)).with_for_update()
    ).first()
    if old is None:
        raise NotFoundError("no active API key with that prefix")
    new = create_api_key(session, org_id, actor, parse_role(old.role), old.label)
    until = now + ROTATION_OVERLAP
    old.expires_at = min(old.expires_at, until) if old.expires_at else until
    record_audit(
        session,
        actor,
        "apikey.rotated",
        org_id=org_id,
        target=prefix,
        details={"replacement": new.prefix, "expires_at": old.expires_at.isoformat()},
    )
    return NewApiKey(
        new.id, org_id, new.prefix, new.key, new.role, new.label, new.created_at, old.expires_at
    )


def active_key(now: datetime | None = None) -> ColumnElement[bool]:
    """Not revoked and, after a rotation, still within its overlap."""
    moment = now if now is not None else func.now()
    return ApiKey.revoked_at.is_(None) & or_(
        ApiKey.expires_at.is_(None), ApiKey.expires_at > moment
    )


def resolve_api_key(session: Session, key: str) -> ResolvedKey | None:
    """The organisation and role of an active key. Maintenance scope (the org is not known)."""
    digest = hash_api_key(key)
    row = session.execute(
        select(ApiKey.org_id, ApiKey.key_hash, ApiKey.role, ApiKey.expires_at).where(
            ApiKey.key_hash == digest, active_key()
        )
    ).first()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return ResolvedKey(row.org_id, parse_role(row.role), row.expires_at)


def revoke_api_key(session: Session, prefix: str, now: datetime, actor: str = "cli") -> uuid.UUID:
    """Revoke by visible prefix, at once (an overlap included). Maintenance scope, or a tenant
    session for the org's own keys. Raises NotFoundError."""
    org_id = session.execute(
        update(ApiKey)
        .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(ApiKey.org_id)
    ).scalar_one_or_none()
    if org_id is None:
        raise NotFoundError(
            "no active API key with that prefix (`leadline apikey list ORG` shows them)"
        )
    record_audit(session, actor, "apikey.revoked", org_id=org_id, target=prefix)
    return org_id


def default_region(session: Session, org_id: uuid.UUID) -> str | None:
    """Tenant session: the region national phone numbers are read in, or None (E.164 only)."""
    region: str | None = session.scalar(
        select(Organization.default_region).where(Organization.id == org_id)
    )
    return region


def set_default_region(
    session: Session, org_id: uuid.UUID, region: str | None, actor: str = "cli"
) -> str | None:
    """Tenant session. Set (validated, raises InvalidRegion) or clear (None) the region."""
    code = normalize_region(region) if region is not None else None
    org = get_organization(session, org_id)
    org.default_region = code
    record_audit(
        session,
        actor,
        "org.settings_changed",
        org_id=org_id,
        target=str(org_id),
        details={"default_region": code},
    )
    return code


def email_from(session: Session, org_id: uuid.UUID) -> str | None:
    """Tenant session: the address the org's email goes out from, or None (it sends none)."""
    address: str | None = session.scalar(
        select(Organization.email_from).where(Organization.id == org_id)
    )
    return address


def set_email_from(
    session: Session, org_id: uuid.UUID, address: str | None, actor: str = "cli"
) -> str | None:
    """Tenant session. Set (validated, raises InvalidEmailAddress) or clear (None) the sender
    address. The audit entry says it changed, not to what (it may be a person's mailbox)."""
    checked = sender_address(address) if address is not None else None
    org = get_organization(session, org_id)
    org.email_from = checked
    record_audit(
        session,
        actor,
        "org.settings_changed",
        org_id=org_id,
        target=str(org_id),
        details={"email_from": "set" if checked else "cleared"},
    )
    return checked


def get_organization(session: Session, org_id: uuid.UUID) -> Organization:
    """Tenant (own org) or maintenance session. Raises NotFoundError."""
    org = session.get(Organization, org_id)
    if org is None:
        raise NotFoundError(f"no organisation {org_id} (`leadline org list` shows them)")
    return org


def list_organizations(session: Session) -> list[Organization]:
    """Maintenance scope: every organisation, oldest first."""
    query = select(Organization).order_by(Organization.created_at, Organization.id)
    return list(session.scalars(query))


def org_counts(session: Session) -> dict[str, int]:
    """Tenant session: how many of each thing the organisation has (counts only, no PII)."""
    from models.channels import OrgPhoneNumber, TelegramChat
    from models.messaging import AlertNumber
    from models.routing import MetaAccount
    from models.webhooks import WebhookEndpoint

    counted = {
        "leads": select(func.count()).select_from(Lead),
        "api_keys_active": select(func.count()).select_from(ApiKey).where(active_key()),
        "numbers": select(func.count()).select_from(OrgPhoneNumber),
        "meta_accounts": select(func.count()).select_from(MetaAccount),
        "alert_numbers": select(func.count()).select_from(AlertNumber),
        "telegram_chats_linked": select(func.count())
        .select_from(TelegramChat)
        .where(TelegramChat.status == "linked"),
        "endpoints": select(func.count()).select_from(WebhookEndpoint),
    }
    return {name: int(session.scalar(query) or 0) for name, query in counted.items()}


@dataclass(frozen=True)
class ApiKeyInfo:
    """What an operator may see about a key: never the key or its hash."""

    id: uuid.UUID
    prefix: str
    role: str
    label: str | None
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None


def list_api_keys(session: Session) -> list[ApiKeyInfo]:
    """Tenant session: the organisation's keys, oldest first."""
    query = select(
        ApiKey.id,
        ApiKey.prefix,
        ApiKey.role,
        ApiKey.label,
        ApiKey.created_at,
        ApiKey.revoked_at,
        ApiKey.expires_at,
    ).order_by(ApiKey.created_at, ApiKey.id)
    return [
        ApiKeyInfo(r.id, r.prefix, r.role, r.label, r.created_at, r.revoked_at, r.expires_at)
        for r in session.execute(query)
    ]
