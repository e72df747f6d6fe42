"""The Bearer-key check every /v1 route shares: the key first, then 401 (counted against the
address's API-key failures, 429 once used up) or the per-key limit."""

from __future__ import annotations

import hashlib
import uuid

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from intake.auth import api_key_prefix, authenticate_api_key, bearer_token
from intake.hooks import cached_org, context_of, remembered
from intake.limits import count_auth_failure, hit
from intake.rejections import label_rejection
from intake.responses import error_response
from leadline.errors import VerificationError


async def bearer_org(request: Request, spoolable: bool = False) -> tuple[uuid.UUID, str] | Response:
    """(org, key prefix) of the request's API key, or the 401 to answer.

    A valid key is never refused for other requests' failures; a bad or missing one is
    counted, and answered 429 instead once the address has used up its API-key failures.
    While the database is unreachable, a `spoolable` route gets the org the key had in the
    last LEADLINE_SPOOL_CACHE_SECONDS; anything else is 503 with Retry-After."""
    try:
        token = bearer_token(request)
        digest = hashlib.sha256(token.encode()).hexdigest()
        org_id = await remembered(
            request,
            "api_key",
            digest,
            lambda: cached_org(
                "api_key",
                digest,
                lambda: run_in_threadpool(authenticate_api_key, context_of(request), token),
            ),
            use_cache=spoolable,
        )
    except VerificationError:
        label_rejection(request, "bad_api_key")
        await count_auth_failure(request, "api_key")
        return error_response(401, "invalid or missing API key")
    if isinstance(org_id, Response):
        return org_id
    if org_id is None:  # authenticate_api_key raises for unknown keys; never reached
        return error_response(401, "invalid or missing API key")
    return org_id, api_key_prefix(token)


async def api_org(request: Request) -> uuid.UUID | Response:
    """The org of an API request, after counting the key's request against its limit."""
    caller = await bearer_org(request)
    if isinstance(caller, Response):
        return caller
    org_id, prefix = caller
    await hit(request, "api", f"key:{prefix}")
    return org_id
