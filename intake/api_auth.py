"""The Bearer-key check every /v1 route shares: per-IP lockout, 401, then the per-key limit."""

from __future__ import annotations

import uuid

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from intake.auth import api_key_prefix, authenticate_api_key, bearer_token
from intake.hooks import context_of
from intake.limits import check_auth_failures, hit, record_auth_failure
from intake.rejections import label_rejection
from intake.responses import error_response
from leadline.errors import VerificationError


async def bearer_org(request: Request) -> tuple[uuid.UUID, str] | Response:
    """(org, key prefix) of the request's API key, or the 401 to answer (counted per IP)."""
    try:
        token = bearer_token(request)
        org_id = await run_in_threadpool(authenticate_api_key, context_of(request), token)
    except VerificationError:
        label_rejection(request, "bad_api_key")
        await record_auth_failure(request)
        return error_response(401, "invalid or missing API key")
    return org_id, api_key_prefix(token)


async def api_org(request: Request) -> uuid.UUID | Response:
    """The org of an API request, after the lockout check and counting the key's request."""
    await check_auth_failures(request)
    caller = await bearer_org(request)
    if isinstance(caller, Response):
        return caller
    org_id, prefix = caller
    await hit(request, "api", f"key:{prefix}")
    return org_id
