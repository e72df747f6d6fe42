"""Organisations and their API keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from leadline.errors import NotFoundError
from models.audit import record_audit
from models.crypto import Keyring
from models.keys import add_data_key
from models.normalize import normalize_region
from models.tables import ApiKey, Lead, Organization

API_KEY_PREFIX = "ll_"


@dataclass(frozen=True)
class NewApiKey:
    id: uuid.UUID
    org_id: uuid.UUID
    prefix: str
    key: str


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


def create_api_key(session: Session, org_id: uuid.UUID, actor: str = "cli") -> NewApiKey:
    """A random key, shown once; only its SHA-256 and a visible prefix are stored."""
    prefix = API_KEY_PREFIX + secrets.token_hex(4)
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(org_id=org_id, prefix=prefix, key_hash=hash_api_key(key))
    session.add(row)
    session.flush()
    record_audit(session, actor, "apikey.created", org_id=org_id, target=prefix)
    return NewApiKey(id=row.id, org_id=org_id, prefix=prefix, key=key)


def resolve_api_key(session: Session, key: str) -> uuid.UUID | None:
    """The organisation owning an active key. Maintenance scope (the org is not known yet)."""
    digest = hash_api_key(key)
    row = session.execute(
        select(ApiKey.org_id, ApiKey.key_hash).where(
            ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)
        )
    ).first()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    org_id: uuid.UUID = row.org_id
    return org_id


def revoke_api_key(session: Session, prefix: str, now: datetime, actor: str = "cli") -> uuid.UUID:
    """Revoke by visible prefix. Maintenance scope. Raises NotFoundError."""
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

    counted: dict[str, Any] = {
        "leads": select(func.count()).select_from(Lead),
        "api_keys_active": select(func.count())
        .select_from(ApiKey)
        .where(ApiKey.revoked_at.is_(None)),
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
    created_at: datetime
    revoked_at: datetime | None


def list_api_keys(session: Session) -> list[ApiKeyInfo]:
    """Tenant session: the organisation's keys, oldest first."""
    query = select(ApiKey.id, ApiKey.prefix, ApiKey.created_at, ApiKey.revoked_at).order_by(
        ApiKey.created_at, ApiKey.id
    )
    return [ApiKeyInfo(r.id, r.prefix, r.created_at, r.revoked_at) for r in session.execute(query)]
