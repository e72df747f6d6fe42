"""One-click unsubscribe (RFC 8058) for campaign email: the signed link, and what a POST to it does.

A token names the organisation and the lead by id, never the address, and when it stops
working. It is url-safe base64 of version ‖ org id ‖ lead id ‖ expiry (seconds, big-endian)
‖ the first 16 bytes of an HMAC-SHA256 of those over a server secret
(LEADLINE_UNSUBSCRIBE_SECRET; outside production, derived from the primary master key when it
is unset). Anything else, or anything changed, or expired, is refused before the database is
asked. The suppression is by the lead's email blind index (tasks/optouts.py), so it blocks
every later email to that address in that org, whichever lead or campaign it comes from.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from leadline.errors import ConfigError, VerificationError
from leadline.settings import Settings
from models.tables import Lead
from tasks.after_commit import AfterCommit
from tasks.context import TaskContext
from tasks.optouts import OptoutChange, suppress_email_index

TOKEN_VERSION = 1
MAC_BYTES = 16
_LAYOUT = struct.Struct(">B16s16sQ")
TOKEN_BYTES = _LAYOUT.size + MAC_BYTES
ACTOR = "email:unsubscribe"
LIST_UNSUBSCRIBE_POST = "List-Unsubscribe=One-Click"


@dataclass(frozen=True)
class UnsubscribeTarget:
    org_id: uuid.UUID
    lead_id: uuid.UUID


def signing_key(settings: Settings) -> bytes:
    """The HMAC key of unsubscribe tokens (production requires the secret: leadline.settings)."""
    secret = settings.leadline_unsubscribe_secret
    if secret is not None and secret.get_secret_value().strip():
        return hashlib.sha256(
            b"leadline-unsubscribe\0" + secret.get_secret_value().encode()
        ).digest()
    if settings.is_production:
        raise ConfigError("LEADLINE_UNSUBSCRIBE_SECRET is not set")
    primary = settings.master_keys()[0][1]
    return hmac.new(primary, b"leadline-unsubscribe-v1", hashlib.sha256).digest()


def make_token(settings: Settings, target: UnsubscribeTarget, now: datetime) -> str:
    expires = now + timedelta(days=settings.leadline_unsubscribe_ttl_days)
    payload = _LAYOUT.pack(
        TOKEN_VERSION, target.org_id.bytes, target.lead_id.bytes, int(expires.timestamp())
    )
    mac = hmac.new(signing_key(settings), payload, hashlib.sha256).digest()[:MAC_BYTES]
    return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")


def read_token(settings: Settings, token: str, now: datetime) -> UnsubscribeTarget:
    """The org and lead a genuine, unexpired token names. Raises VerificationError."""
    raw = _decode(token)
    payload, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
    expected = hmac.new(signing_key(settings), payload, hashlib.sha256).digest()[:MAC_BYTES]
    if not hmac.compare_digest(mac, expected):
        raise VerificationError("unsubscribe token not genuine")
    version, org, lead, expires = _LAYOUT.unpack(payload)
    if version != TOKEN_VERSION:
        raise VerificationError("unsubscribe token of an unknown version")
    if datetime.fromtimestamp(expires, UTC) <= now:
        raise VerificationError("unsubscribe token expired")
    return UnsubscribeTarget(uuid.UUID(bytes=org), uuid.UUID(bytes=lead))


def _decode(token: str) -> bytes:
    if len(token) > 2 * TOKEN_BYTES or not token.isascii():
        raise VerificationError("unsubscribe token malformed")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise VerificationError("unsubscribe token malformed") from None
    if len(raw) != TOKEN_BYTES or base64.urlsafe_b64encode(raw).decode().rstrip("=") != token:
        raise VerificationError("unsubscribe token malformed")
    return raw


def unsubscribe_url(settings: Settings, token: str) -> str:
    return f"{settings.leadline_public_url.rstrip('/')}/unsubscribe/{token}"


def unsubscribe_headers(url: str) -> tuple[tuple[str, str], ...]:
    """What every marketing email carries (RFC 2369 and RFC 8058)."""
    return (("List-Unsubscribe", f"<{url}>"), ("List-Unsubscribe-Post", LIST_UNSUBSCRIBE_POST))


def unsubscribe(context: TaskContext, target: UnsubscribeTarget) -> bool:
    """Suppress the lead's address at once; False when nothing changed (already suppressed,
    or the lead is gone: an erased person gets no email anyway). Idempotent."""
    after_commit = AfterCommit()
    with context.db.tenant(target.org_id) as session:
        lead = session.get(Lead, target.lead_id)
        if lead is None or lead.email_bidx is None:
            return False
        cipher = context.keys.cipher(session, target.org_id)
        change = OptoutChange(
            session,
            cipher,
            lead.email_bidx,
            "email_unsubscribe",
            ACTOR,
            after_commit,
            context.clock(),
            lead_id=lead.id,
        )
        created = suppress_email_index(change)
    after_commit.flush()
    return created
