"""Connecting Instagram, Messenger and WhatsApp by OAuth, and disconnecting them.

1. `start_authorization` (GET /v1/connections/meta/authorize): a signed state
   (tasks/oauth_state.py) whose nonce is recorded with org and principal, and the URL of
   Meta's login dialog carrying it.
2. `complete_authorization` (GET /oauth/meta/callback): the state is verified and its nonce
   consumed (one transaction, committed) before the code is exchanged, and an API key that
   started it must still be an admin's; a state that fails any step stores nothing. The
   tokens of every account the grant serves are stored encrypted, and the accounts route
   inbound webhooks to the org (as `leadline meta link`).
3. `revoke_connection` (DELETE /v1/connections/{id}): the provider's revoke endpoint first,
   then the tokens are deleted; revoking a grant ends every connection it made.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from leadline.errors import ConfigError, LeadlineError, VerificationError
from leadline.settings import Settings
from models.audit import record_audit
from models.billing import AlreadyLinked
from models.connections import (
    ConnectionView,
    GrantedAccount,
    connection_token,
    consume_oauth_state,
    get_connection,
    list_connections,
    purge_expired_states,
    record_oauth_state,
    revoke_grant,
    store_connection,
)
from models.orgs import ROLES
from models.routing import MetaAccount, add_meta_account
from models.tables import ApiKey
from tasks.context import TaskContext
from tasks.meta_graph import GraphError, exchange_code
from tasks.meta_graph import revoke_grant as revoke_at_provider
from tasks.oauth_state import new_claims, sign_state, state_key, verify_state

CALLBACK_PATH = "/oauth/meta/callback"


class NotConfiguredError(LeadlineError):
    """META_APP_ID / META_APP_SECRET (or the state key) are not set."""


class ProviderUnavailableError(LeadlineError):
    """The Graph API refused or could not be reached; nothing was changed."""


@dataclass(frozen=True)
class Authorization:
    url: str
    state: str
    expires_at: datetime


@dataclass(frozen=True)
class Connected:
    connections: list[ConnectionView]
    # Accounts that already route to another organisation: not connected here.
    skipped: list[str] = field(default_factory=list)


def redirect_uri(settings: Settings) -> str:
    return settings.leadline_public_url.rstrip("/") + CALLBACK_PATH


def _signing_key(settings: Settings) -> bytes:
    if not settings.meta_app_id or settings.meta_app_secret is None:
        raise NotConfiguredError("META_APP_ID and META_APP_SECRET are not set")
    try:
        return state_key(settings)
    except ConfigError:
        raise NotConfiguredError("LEADLINE_OAUTH_STATE_SECRET is not set") from None


def start_authorization(
    session: Session, settings: Settings, org_id: uuid.UUID, principal: str, now: datetime
) -> Authorization:
    """Tenant session: record the nonce; the caller commits, then hands out the URL."""
    key = _signing_key(settings)
    claims = new_claims(org_id, principal, now)
    record_oauth_state(session, org_id, claims.nonce, principal, claims.expires_at)
    record_audit(session, principal, "connection.authorization_started", org_id=org_id)
    state = sign_state(key, claims)
    query = urlencode(
        {
            "client_id": settings.meta_app_id,
            "redirect_uri": redirect_uri(settings),
            "scope": settings.meta_oauth_scopes,
            "state": state,
            "response_type": "code",
        }
    )
    url = f"{settings.meta_oauth_base.rstrip('/')}/dialog/oauth?{query}"
    return Authorization(url, state, claims.expires_at)


def complete_authorization(context: TaskContext, code: str, state: str) -> Connected:
    """VerificationError for a forged, altered, replayed, expired or misbound state (nothing
    stored); ProviderUnavailableError when the code could not be exchanged (the state is
    spent: the business starts again)."""
    settings, now = context.settings, context.clock()
    claims = verify_state(_signing_key(settings), state, now)
    with context.db.tenant(claims.org_id) as session:
        if not consume_oauth_state(session, claims.nonce, claims.principal, now):
            raise VerificationError("invalid state")
        if not may_still_connect(session, claims.principal, now):
            raise VerificationError("invalid state")
    try:
        grant = exchange_code(settings, code, redirect_uri(settings))
    except GraphError:
        raise ProviderUnavailableError("the authorization code could not be exchanged") from None
    with context.db.tenant(claims.org_id) as session:
        cipher = context.keys.cipher(session, claims.org_id)
        stored, skipped = [], []
        for account in grant.accounts:
            if not route_to_org(session, claims.org_id, account, claims.principal):
                skipped.append(account.account_id)
                continue
            store_connection(session, cipher, account, grant.user_id, claims.principal, now)
            stored.append(account.account_id)
        views = [c for c in list_connections(session) if c.account_id in stored]
    return Connected(views, skipped)


def may_still_connect(session: Session, principal: str, now: datetime) -> bool:
    """An API key that started the authorization must still be an admin's when it completes
    (not revoked, expired or swapped in the meantime). OIDC principals are not stored here:
    their identity provider decides, and the state's ten minutes bound the delay."""
    if not principal.startswith("key:"):
        return True
    key = session.scalars(select(ApiKey).where(ApiKey.prefix == principal.removeprefix("key:")))
    row = key.first()
    return (
        row is not None
        and row.revoked_at is None
        and (row.expires_at is None or row.expires_at > now)
        and ROLES.index(row.role) >= ROLES.index("admin")
    )


def route_to_org(session: Session, org_id: uuid.UUID, account: GrantedAccount, actor: str) -> bool:
    """Inbound webhooks for the account reach this org; False if another org has it."""
    query = select(MetaAccount.id).where(MetaAccount.account_id == account.account_id)
    if session.scalar(query) is not None:
        return True
    try:
        add_meta_account(session, org_id, account.account_id, actor=actor)
    except AlreadyLinked:
        return False
    return True


def purge_oauth_states(context: TaskContext, now: datetime) -> dict[str, int]:
    """Authorizations never completed: their nonces, once expired, are only clutter."""
    with context.db.maintenance() as session:
        return {"states_purged": purge_expired_states(session, now)}


def revoke_connection(
    context: TaskContext, org_id: uuid.UUID, connection_id: uuid.UUID, actor: str
) -> list[uuid.UUID]:
    """Call the provider's revoke endpoint with the connection's token, then delete the
    tokens of every connection of that grant. NotFoundError, ProviderUnavailableError."""
    with context.db.tenant(org_id) as session:
        row = get_connection(session, connection_id)
        token = connection_token(context.keys.cipher(session, org_id), row)
        user_id = row.provider_user_id
    if token is not None:
        try:
            revoke_at_provider(context.settings, user_id, token)
        except GraphError:
            raise ProviderUnavailableError("the provider could not revoke the access") from None
    with context.db.tenant(org_id) as session:
        return revoke_grant(session, get_connection(session, connection_id), actor, context.clock())
