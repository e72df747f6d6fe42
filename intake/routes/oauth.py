"""GET /oauth/meta/callback: where Meta's login dialog sends the browser back with `code`
and `state`. A state that is forged, altered, replayed, expired or bound to another org or
principal is 403 with nothing stored; otherwise the code is exchanged and the accounts it
serves are connected (tasks/connections.py). No token is ever part of the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from intake.hooks import context_of
from intake.responses import error_response
from leadline.errors import NotFoundError, VerificationError
from leadline.logging import get_logger
from tasks.connections import (
    CALLBACK_PATH,
    NotConfiguredError,
    ProviderUnavailableError,
    complete_authorization,
)

router = APIRouter()
log = get_logger(__name__)
Code = Annotated[str | None, Query(max_length=2048)]
State = Annotated[str | None, Query(max_length=1024)]


@router.get(CALLBACK_PATH, include_in_schema=False)
async def meta_callback(
    request: Request, code: Code = None, state: State = None, error: Code = None
) -> Response:
    if error is not None or not code or not state:
        return error_response(400, "authorization_denied" if error else "missing_code_or_state")
    try:
        connected = await run_in_threadpool(
            complete_authorization, context_of(request), code, state
        )
    except (VerificationError, NotFoundError):
        log.warning("oauth state refused")
        return error_response(403, "invalid_state")
    except NotConfiguredError:
        return error_response(503, "not_configured")
    except ProviderUnavailableError:
        return error_response(502, "provider_unavailable")
    body = {
        "connected": [
            {"id": str(c.id), "kind": c.kind, "account_id": c.account_id, "status": c.status}
            for c in connected.connections
        ],
        "skipped": connected.skipped,
    }
    return JSONResponse(body)
