"""POST /v1/imports (a CSV of leads, multipart), GET /v1/imports/{id} and its error CSV.

The whole file is checked before anything is stored (tasks/imports/scan.py: 413, 415, 422);
then it is stored encrypted and written by workers in batches. The same file again in the
same org answers 200 with the first import, which it is."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from intake.api_schemas import ImportOut
from intake.hooks import context_of, media_type
from intake.multipart import MalformedMultipart, Part, read_multipart
from intake.principals import CurrentPrincipal, Principal
from intake.responses import error_response
from intake.tenant_calls import TenantCall, in_tenant
from leadline.jsondata import JsonObject
from tasks.context import TaskContext
from tasks.imports.batches import start_import
from tasks.imports.report import ImportReport, errors_csv, get_import, import_report
from tasks.imports.scan import MAX_FILE_BYTES, ImportRefused, parse_mapping, scan_file

router = APIRouter()
# The file, plus room for the multipart framing and `map` fields.
MAX_UPLOAD_BODY_BYTES = MAX_FILE_BYTES + 64 * 1024
CSV_TYPES = frozenset({"text/csv"})
UPLOAD_BODY: JsonObject = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "The CSV (UTF-8, UTF-8 with BOM or UTF-16 with BOM; "
                        "at most 10 MB and 100,000 rows), sent as text/csv.",
                    },
                    "map": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "COLUMN=FIELD, repeatable: a column of the file read "
                        "as a lead field (COLUMN= leaves it out).",
                    },
                },
            },
            "encoding": {"file": {"contentType": "text/csv"}},
        }
    },
}
UPLOAD_RESPONSES: dict[int | str, JsonObject] = {
    200: {"model": ImportOut, "description": "The same file was imported before: that import"},
}
ERRORS_CONTENT: dict[int | str, JsonObject] = {
    200: {"description": "line, reason and the rejected row's cells", "content": {"text/csv": {}}}
}


@router.post(
    "/v1/imports",
    status_code=202,
    response_model=ImportOut,
    responses=UPLOAD_RESPONSES,
    openapi_extra={"requestBody": UPLOAD_BODY},
)
async def upload(request: Request, principal: CurrentPrincipal) -> Response:
    if media_type(request) != "multipart/form-data":
        return error_response(415, "content type must be multipart/form-data")
    try:
        parts = read_multipart(await request.body(), request.headers["content-type"])
    except MalformedMultipart as exc:
        return error_response(422, str(exc))
    files = [part for part in parts if part.name == "file"]
    if len(files) != 1:
        return error_response(422, "exactly one `file` part (the CSV) is required")
    if files[0].content_type not in CSV_TYPES:
        return error_response(415, "the file part must be text/csv")
    maps = [bytes(part.data).decode("utf-8", "replace") for part in parts if part.name == "map"]
    try:
        report, created = await run_in_threadpool(
            store, context_of(request), principal, files[0], maps
        )
    except ImportRefused as exc:
        return error_response(exc.status, str(exc))
    headers = {"Location": f"/v1/imports/{report['id']}"}
    return JSONResponse(dict(report), status_code=202 if created else 200, headers=headers)


def store(
    context: TaskContext, principal: Principal, file: Part, maps: list[str]
) -> tuple[ImportReport, bool]:
    new = scan_file(bytes(file.data), parse_mapping(maps), principal.subject)
    stored = start_import(context, principal.org_id, new)
    with context.db.tenant(principal.org_id) as session:
        return import_report(get_import(session, stored.id)), stored.created


@router.get("/v1/imports/{import_id}", response_model=ImportOut)
async def show(request: Request, principal: CurrentPrincipal, import_id: uuid.UUID) -> ImportOut:
    def read(call: TenantCall) -> ImportOut:
        return ImportOut.model_validate(import_report(get_import(call.session, import_id)))

    return await in_tenant(request, principal, read)


@router.get("/v1/imports/{import_id}/errors", response_class=Response, responses=ERRORS_CONTENT)
async def errors(request: Request, principal: CurrentPrincipal, import_id: uuid.UUID) -> Response:
    """Only the org's own imports; the values of rejected rows are never logged."""

    def read(call: TenantCall) -> bytes:
        return errors_csv(call.session, call.cipher, import_id)

    content = await in_tenant(request, principal, read)
    headers = {
        "Content-Disposition": f'attachment; filename="import-{import_id}-errors.csv"',
        "Cache-Control": "no-store",
    }
    return Response(content, media_type="text/csv; charset=utf-8", headers=headers)
