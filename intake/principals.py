"""Who is calling the tenant API: one Principal (org, role, subject) per request, from an API
key (`Bearer ll_…`) or a team member's OIDC access token (`Bearer <JWT>`).

Every /v1 route takes it from one dependency, `authorized`: authenticate, look the route up
in intake/permissions.py (403 `{"error": "forbidden", "required_role": …}` when the role is
too small), then count the request against its rate-limit class (reads: LEADLINE_LIMIT_API_READS;
writes: LEADLINE_LIMIT_API), per principal. A bad or missing credential is 401, counted
against the address's `api_key` failures (429 once they are used up), never before the
credential was checked.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from intake.api_errors import ApiError
from intake.auth import api_key_prefix, authenticate_api_key, bearer_token
from intake.hooks import context_of, remembered
from intake.limits import count_auth_failure, hit
from intake.oidc import OidcVerifier
from intake.permissions import allows, required_role
from intake.rejections import label_rejection
from intake.spool import RETRY_AFTER_SECONDS
from leadline.errors import VerificationError
from models.cache import Cache
from models.orgs import API_KEY_PREFIX, ResolvedKey, Role
from models.routing import org_accepts_events

READ_METHODS = frozenset({"GET", "HEAD"})
UNAUTHORIZED = "invalid or missing credentials"


@dataclass(frozen=True)
class Principal:
    """An organisation's caller: what it may do, and the name the audit log gives it."""

    org_id: uuid.UUID
    role: Role
    # `key:<prefix>` or `oidc:<sub>`: ids, never personal data
    subject: str

    @property
    def limit_key(self) -> str:
        """Rate-limit bucket (Redis holds ids only: an OIDC subject goes in hashed)."""
        if self.subject.startswith("key:"):
            return self.subject
        return "oidc:" + hashlib.sha256(self.subject.encode()).hexdigest()[:24]


def unauthorized() -> ApiError:
    return ApiError(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})


def unavailable() -> ApiError:
    return ApiError(
        503, "temporarily unavailable", headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


async def authenticate(request: Request, spoolable: bool = False) -> Principal:
    """The request's principal, or ApiError 401 (429 once the address failed too often).

    While the database is unreachable, a `spoolable` route gets the org an API key had in the
    last LEADLINE_SPOOL_CACHE_SECONDS, with the least role (all such a route needs)."""
    try:
        token = bearer_token(request)
        if token.startswith(API_KEY_PREFIX):
            return await key_principal(request, token, spoolable)
        return await token_principal(request, token)
    except VerificationError:
        label_rejection(request, "bad_api_key")
        await count_auth_failure(request, "api_key")
        raise unauthorized() from None


# Active API keys by SHA-256, kept in-process until api_keys changes anywhere (models/cache.py):
# a hit costs no database round trip and no threadpool hop; a revocation reaches it at once.
API_KEYS: Cache[str, ResolvedKey] = Cache(("api_keys",))


async def resolved_key(request: Request, token: str, key_hash: str) -> ResolvedKey:
    """The key's org and role, from the cache while the key is still within its overlap."""
    cached = API_KEYS.peek(key_hash)
    now = context_of(request).clock()
    if isinstance(cached, ResolvedKey) and (cached.expires_at is None or cached.expires_at > now):
        return cached
    generation = API_KEYS.token()
    resolved = await run_in_threadpool(authenticate_api_key, context_of(request), token)
    API_KEYS.store(key_hash, resolved, generation)
    return resolved


async def key_principal(request: Request, token: str, spoolable: bool) -> Principal:
    roles: list[Role] = []

    async def lookup() -> uuid.UUID:
        resolved = await resolved_key(request, token, key_hash)
        roles.append(resolved.role)
        return resolved.org_id

    key_hash = hashlib.sha256(token.encode()).hexdigest()
    org_id = await remembered(request, "api_key", key_hash, lookup, use_cache=spoolable)
    if isinstance(org_id, Response):
        raise unavailable()
    if org_id is None:  # authenticate_api_key raises for unknown keys; never reached
        raise VerificationError("invalid API key")
    return Principal(org_id, roles[0] if roles else "ingest", f"key:{api_key_prefix(token)}")


async def token_principal(request: Request, token: str) -> Principal:
    verifier: OidcVerifier | None = request.app.state.oidc
    if verifier is None or token.count(".") != 2:
        raise VerificationError("not an API key, and OIDC tokens are not configured")
    claims = await run_in_threadpool(verifier.verify, token)
    if not await run_in_threadpool(org_is_open, request, claims.org_id):
        raise VerificationError("the token's organisation does not exist or is closed")
    return Principal(claims.org_id, claims.role, f"oidc:{claims.subject}")


def org_is_open(request: Request, org_id: uuid.UUID) -> bool:
    with context_of(request).db.tenant(org_id) as session:
        return org_accepts_events(session, org_id)


def route_template(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else request.url.path


def check_role(principal: Principal, method: str, path: str) -> None:
    """ApiError 403 naming the least role `method path` needs, unless the principal has it."""
    required = required_role(method, path)
    if not allows(principal.role, required):
        raise ApiError(403, "your role may not do this", code="forbidden", required_role=required)


async def authorized(request: Request) -> Principal:
    """The one dependency of every /v1 route: authenticated, allowed, counted."""
    principal = await authenticate(request)
    check_role(principal, request.method, route_template(request))
    limit = "api_reads" if request.method in READ_METHODS else "api"
    await hit(request, limit, principal.limit_key)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authorized)]
