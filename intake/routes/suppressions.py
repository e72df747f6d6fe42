"""GET /v1/suppressions (who must not be texted) and POST /v1/suppressions (an opt-out the
business received by phone, email, in person: recorded like a STOP, with its note, audited).
There is no DELETE: only the person lifts it, by texting START."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from intake.api_schemas import SuppressionIn, SuppressionOut, SuppressionPage
from intake.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, next_cursor
from intake.principals import CurrentPrincipal
from intake.schemas import e164_or_422
from intake.tenant_calls import TenantCall, in_tenant
from leadline.logging import mark_sensitive
from tasks.optouts import (
    RecordedOptout,
    SuppressionRecord,
    list_suppressions,
    record_reported_optout,
)

router = APIRouter(tags=["opt-outs"])


@router.get("/v1/suppressions", response_model=SuppressionPage)
async def suppressions(
    request: Request,
    principal: CurrentPrincipal,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> SuppressionPage:
    position = decode_cursor(cursor)

    def read(call: TenantCall) -> list[SuppressionRecord]:
        return list_suppressions(call.session, call.cipher, position, limit)

    rows = await in_tenant(request, principal, read)
    return SuppressionPage(
        data=[SuppressionOut(**asdict(row)) for row in rows], next_cursor=next_cursor(rows, limit)
    )


@router.post(
    "/v1/suppressions",
    status_code=201,
    response_model=SuppressionOut,
    responses={200: {"model": SuppressionOut, "description": "Already suppressed: unchanged"}},
)
async def record(
    request: Request, principal: CurrentPrincipal, body: SuppressionIn
) -> JSONResponse:
    mark_sensitive(body.phone, body.note)
    phone = e164_or_422(body.phone, ["body", "phone"])

    def write(call: TenantCall) -> RecordedOptout:
        return record_reported_optout(
            call.session,
            call.cipher,
            phone,
            body.channel,
            body.note,
            call.actor,
            call.after_commit,
            call.now,
        )

    recorded = await in_tenant(request, principal, write)
    out = SuppressionOut(**asdict(recorded.suppression))
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if recorded.created else 200)
