"""Webhook endpoints: creation with a vetted URL, secrets (encrypted, rotated), enable/disable."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypedDict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadline.errors import LeadlineError, NotFoundError
from leadline.netguard import Resolver, system_resolver, validate_webhook_url
from leadline.settings import Settings
from leadline.webhook_signature import generate_secret, secret_key
from models.audit import record_audit
from models.crypto import OrgCipher
from models.webhooks import EventType, WebhookDelivery, WebhookEndpoint

TABLE = "webhook_endpoints"
EVENT_TYPES = tuple(EventType)
# Lead fields an endpoint may opt into; ids, source and status are always sent.
SHAREABLE_FIELDS = ("name", "phone", "email", "message", "sms_consent", "created_at")
ROTATION_OVERLAP = timedelta(hours=24)
ENDPOINT_NOT_FOUND = "webhook endpoint not found (`leadline endpoint list ORG` shows them)"


class InvalidEndpointError(LeadlineError, ValueError):
    """The endpoint definition (events, shared fields, description) is not acceptable."""


@dataclass(frozen=True)
class UrlPolicy:
    allow_http: bool
    allow_private: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlPolicy:
        development = not settings.is_production
        private = settings.leadline_allow_private_webhook_targets and development
        return cls(allow_http=development, allow_private=private)


@dataclass(frozen=True)
class EndpointSpec:
    url: str
    event_types: tuple[str, ...]
    description: str | None = None
    shared_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewSecret:
    endpoint_id: uuid.UUID
    org_id: uuid.UUID
    secret: str


def parse_event_types(values: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(v.strip() for v in values if v.strip()))
    if not chosen:
        raise InvalidEndpointError("at least one event type is required")
    unknown = sorted(set(chosen) - set(EVENT_TYPES))
    if unknown:
        raise InvalidEndpointError(
            f"unknown event type(s): {', '.join(unknown)} (known: {', '.join(EVENT_TYPES)})"
        )
    return chosen


def parse_shared_fields(values: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(v.strip() for v in values if v.strip()))
    unknown = sorted(set(chosen) - set(SHAREABLE_FIELDS))
    if unknown:
        raise InvalidEndpointError(
            f"unknown lead field(s): {', '.join(unknown)} (known: {', '.join(SHAREABLE_FIELDS)})"
        )
    return chosen


def create_endpoint(
    session: Session,
    cipher: OrgCipher,
    spec: EndpointSpec,
    policy: UrlPolicy,
    *,
    resolver: Resolver = system_resolver,
    actor: str = "cli",
) -> NewSecret:
    """Vet the URL (raises UnsafeTargetError), store the endpoint, return its secret once."""
    validate_webhook_url(
        spec.url,
        allow_http=policy.allow_http,
        allow_private=policy.allow_private,
        resolver=resolver,
    )
    if spec.description is not None and len(spec.description) > 500:
        raise InvalidEndpointError("description is longer than 500 characters")
    endpoint_id, secret = uuid.uuid4(), generate_secret()
    session.add(
        WebhookEndpoint(
            id=endpoint_id,
            org_id=cipher.org_id,
            url=spec.url,
            description=spec.description,
            event_types=list(parse_event_types(spec.event_types)),
            shared_fields=list(parse_shared_fields(spec.shared_fields)),
            secret_ct=_seal(cipher, secret, "secret_ct", endpoint_id),
            enabled=True,
        )
    )
    session.flush()
    details = {"events": list(spec.event_types), "shared_fields": list(spec.shared_fields)}
    record_audit(
        session,
        actor,
        "endpoint.created",
        org_id=cipher.org_id,
        target=str(endpoint_id),
        details=details,
    )
    return NewSecret(endpoint_id, cipher.org_id, secret)


def _seal(cipher: OrgCipher, secret: str, column: str, endpoint_id: uuid.UUID) -> bytes:
    return cipher.encrypt(secret.encode(), TABLE, column, endpoint_id)


def _open(cipher: OrgCipher, sealed: bytes, column: str, endpoint_id: uuid.UUID) -> str:
    return cipher.decrypt(sealed, TABLE, column, endpoint_id).decode()


def get_endpoint(
    session: Session, endpoint_id: uuid.UUID, *, lock: bool = False
) -> WebhookEndpoint:
    query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    endpoint = session.scalars(query.with_for_update() if lock else query).first()
    if endpoint is None:
        raise NotFoundError(ENDPOINT_NOT_FOUND)
    return endpoint


def endpoint_org(session: Session, endpoint_id: uuid.UUID) -> uuid.UUID:
    """The organisation owning an endpoint. Maintenance scope (the CLI only has the id)."""
    org_id = session.scalar(select(WebhookEndpoint.org_id).where(WebhookEndpoint.id == endpoint_id))
    if org_id is None:
        raise NotFoundError(ENDPOINT_NOT_FOUND)
    return org_id


def rotate_secret(
    session: Session,
    cipher: OrgCipher,
    endpoint_id: uuid.UUID,
    now: datetime,
    *,
    actor: str = "cli",
) -> NewSecret:
    """A new secret signs from now on; the old one keeps signing too for 24 hours."""
    endpoint = get_endpoint(session, endpoint_id, lock=True)
    old = _open(cipher, endpoint.secret_ct, "secret_ct", endpoint.id)
    secret = generate_secret()
    endpoint.previous_secret_ct = _seal(cipher, old, "previous_secret_ct", endpoint.id)
    endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
    endpoint.secret_ct = _seal(cipher, secret, "secret_ct", endpoint.id)
    endpoint.updated_at = now
    record_audit(
        session, actor, "endpoint.secret_rotated", org_id=endpoint.org_id, target=str(endpoint.id)
    )
    return NewSecret(endpoint.id, endpoint.org_id, secret)


class SecretColumns(Protocol):
    """What signing needs from an endpoint row (the ORM object or a Core result row)."""

    id: uuid.UUID
    secret_ct: bytes
    previous_secret_ct: bytes | None
    previous_secret_expires_at: datetime | None


def signing_keys(cipher: OrgCipher, endpoint: SecretColumns, now: datetime) -> list[bytes]:
    """HMAC keys to sign with: the current secret, plus the previous one while it is valid."""
    keys = [secret_key(_open(cipher, endpoint.secret_ct, "secret_ct", endpoint.id))]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_ct is not None and expires is not None and now < expires:
        previous = _open(cipher, endpoint.previous_secret_ct, "previous_secret_ct", endpoint.id)
        keys.append(secret_key(previous))
    return keys


def mark_disabled(endpoint: WebhookEndpoint, reason: str, now: datetime) -> bool:
    """Disable in place; False when it already was (so callers announce it only once)."""
    if not endpoint.enabled:
        return False
    endpoint.enabled = False
    endpoint.disabled_reason = reason[:200]
    endpoint.disabled_at = now
    endpoint.updated_at = now
    return True


def enable_endpoint(
    session: Session, endpoint_id: uuid.UUID, now: datetime, *, actor: str = "cli"
) -> WebhookEndpoint:
    endpoint = get_endpoint(session, endpoint_id, lock=True)
    endpoint.enabled = True
    endpoint.disabled_reason = None
    endpoint.disabled_at = None
    endpoint.failing_since = None
    endpoint.updated_at = now
    record_audit(
        session, actor, "endpoint.enabled", org_id=endpoint.org_id, target=str(endpoint.id)
    )
    return endpoint


def delete_endpoint(session: Session, endpoint_id: uuid.UUID, *, actor: str = "cli") -> int:
    """Remove the endpoint with its deliveries and attempt log. Returns the deliveries removed.

    A worker holding one of its deliveries finds the row gone and records nothing."""
    endpoint = get_endpoint(session, endpoint_id, lock=True)
    deliveries = int(
        session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
        )
        or 0
    )
    session.delete(endpoint)
    session.flush()
    record_audit(
        session,
        actor,
        "endpoint.deleted",
        org_id=endpoint.org_id,
        target=str(endpoint_id),
        details={"deliveries_deleted": deliveries},
    )
    return deliveries


@dataclass(frozen=True)
class EndpointChanges:
    """What PATCH changes; None leaves a field as it is."""

    url: str | None = None
    description: str | None = None
    event_types: tuple[str, ...] | None = None
    shared_fields: tuple[str, ...] | None = None


def update_endpoint(
    session: Session,
    endpoint_id: uuid.UUID,
    changes: EndpointChanges,
    policy: UrlPolicy,
    now: datetime,
    *,
    resolver: Resolver = system_resolver,
    actor: str = "cli",
) -> WebhookEndpoint:
    """Change an endpoint; a new URL is vetted as at creation (raises UnsafeTargetError)."""
    endpoint = get_endpoint(session, endpoint_id, lock=True)
    if changes.url is not None:
        validate_webhook_url(
            changes.url,
            allow_http=policy.allow_http,
            allow_private=policy.allow_private,
            resolver=resolver,
        )
        endpoint.url = changes.url
    if changes.description is not None:
        if len(changes.description) > 500:
            raise InvalidEndpointError("description is longer than 500 characters")
        endpoint.description = changes.description
    if changes.event_types is not None:
        endpoint.event_types = list(parse_event_types(changes.event_types))
    if changes.shared_fields is not None:
        endpoint.shared_fields = list(parse_shared_fields(changes.shared_fields))
    endpoint.updated_at = now
    changed = sorted(name for name, value in vars(changes).items() if value is not None)
    record_audit(
        session,
        actor,
        "endpoint.updated",
        org_id=endpoint.org_id,
        target=str(endpoint.id),
        details={"fields": changed},
    )
    return endpoint


class EndpointSummary(TypedDict):
    id: str
    org_id: str
    url: str
    description: str | None
    event_types: list[str]
    shared_fields: list[str]
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    created_at: datetime


def list_endpoints(session: Session) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    return list(session.scalars(query).all())


def endpoint_summary(endpoint: WebhookEndpoint) -> EndpointSummary:
    """What operators see about an endpoint: never its secret."""
    return {
        "id": str(endpoint.id),
        "org_id": str(endpoint.org_id),
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types),
        "shared_fields": list(endpoint.shared_fields),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "disabled_at": endpoint.disabled_at,
        "failing_since": endpoint.failing_since,
        "created_at": endpoint.created_at,
    }
