"""DELETE /v1/leads/{id} (erasure request) and GET /v1/export, for the org's own API key."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from intake.api_schemas import ErasureOut
from intake.principals import CurrentPrincipal
from intake.responses import error_response
from leadline.errors import NotFoundError
from leadline.jsondata import JsonObject
from models.retention import ErasureRequest
from tasks.context import TaskContext
from tasks.erasure import request_erasure
from tasks.export import ExportFormat, export_org

router = APIRouter()


def file_erasure(
    context: TaskContext, org_id: uuid.UUID, lead_id: uuid.UUID, actor: str
) -> ErasureRequest:
    deadline = timedelta(hours=context.settings.leadline_erasure_deadline_hours)
    with context.db.tenant(org_id) as session:
        return request_erasure(session, lead_id, context.clock(), deadline, actor=actor)


@router.delete("/v1/leads/{lead_id}", status_code=202, response_model=ErasureOut)
async def erase_lead(request: Request, lead_id: str, principal: CurrentPrincipal) -> Response:
    context = request.app.state.context
    try:
        lead = uuid.UUID(lead_id)
        erasure = await run_in_threadpool(
            file_erasure, context, principal.org_id, lead, principal.subject
        )
    except (ValueError, NotFoundError):
        return error_response(404, "not found")
    body = {
        "erasure_request": str(erasure.id),
        "status": erasure.status,
        "due_by": erasure.due_at.isoformat(),
    }
    return JSONResponse(body, status_code=202)


EXPORT_CONTENT: dict[int | str, JsonObject] = {
    200: {
        "description": "Leads and conversations: JSON, or a zip of CSV files (format=csv)",
        "content": {"application/json": {}, "application/zip": {}},
    }
}


@router.get("/v1/export", response_class=Response, responses=EXPORT_CONTENT)
async def export(
    request: Request, principal: CurrentPrincipal, format: ExportFormat = "json"
) -> Response:
    context: TaskContext = request.app.state.context
    fmt: ExportFormat = format
    result = await run_in_threadpool(export_org, context, principal.org_id, fmt, principal.subject)
    headers = {
        "Content-Disposition": f'attachment; filename="{result.filename}"',
        "Cache-Control": "no-store",
    }
    return Response(result.content, media_type=result.media_type, headers=headers)
