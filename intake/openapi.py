"""The tenant API's contract: its routers, and the OpenAPI 3.1 document built from them
alone (no services needed), served at /openapi.json and committed as docs/openapi.json.

Regenerate the committed copy with `make openapi` (`python -m intake.openapi docs/openapi.json`);
tests/api/test_openapi.py fails while the two differ."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from intake.api_schemas import ErrorBody
from intake.permissions import required_role
from intake.routes import (
    alert_recipients,
    api_keys,
    audit,
    campaigns,
    connections,
    conversations,
    events,
    imports,
    lead_records,
    leads,
    message_templates,
    retention,
    suppressions,
    webhook_deliveries,
    webhook_endpoints,
)
from intake.schemas import LeadIn
from leadline.jsondata import JsonObject

TITLE = "Leadline tenant API"
VERSION = "1.0.0"
DESCRIPTION = """\
The back end of a lead-management dashboard: leads, conversations, opt-outs, webhook
endpoints and deliveries, alerts, templates, campaigns, API keys and the audit log of one
organisation. Authenticate with `Authorization: Bearer <API key or OIDC access token>`; each
operation names the least role that may call it (`x-required-role`). Lists are cursor
pages: `{"data": [...], "next_cursor": ...}`. Errors: `{"error", "message", "fields"}`.
See docs/api.md."""
ROUTERS: tuple[APIRouter, ...] = (
    leads.router,
    events.router,
    lead_records.router,
    conversations.router,
    suppressions.router,
    webhook_endpoints.router,
    webhook_deliveries.router,
    alert_recipients.router,
    message_templates.router,
    campaigns.router,
    connections.router,
    imports.router,
    api_keys.router,
    retention.router,
    audit.router,
)
ERROR_RESPONSES: dict[int | str, JsonObject] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Malformed request (e.g. an Idempotency-Key)",
        401: "Missing, invalid, revoked or expired credentials",
        403: "The principal's role may not call this route (`required_role` says which may)",
        404: "No such resource in the caller's organisation",
        409: "Conflicts with the resource's state (`opted_out`, `endpoint_disabled`, ...)",
        413: "Request body over LEADLINE_MAX_BODY_BYTES (an import: over 10 MB or 100,000 rows)",
        415: "A body that is not application/json (an import: not CSV in UTF-8 or UTF-16)",
        422: "Invalid request (`fields` say where; values are never echoed)",
        429: "Rate limited (see Retry-After)",
        503: "The database is unreachable (see Retry-After)",
    }.items()
}
LEADS_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LeadIn"}}},
}


def include_tenant_api(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router, responses=ERROR_RESPONSES)


def build_document() -> JsonObject:
    app = FastAPI(title=TITLE, version=VERSION, openapi_url=None, docs_url=None, redoc_url=None)
    include_tenant_api(app)
    document: JsonObject = get_openapi(
        title=TITLE,
        version=VERSION,
        openapi_version="3.1.0",
        description=DESCRIPTION,
        routes=app.routes,
    )
    add_security(document)
    add_lead_body(document)
    return document


def at(document: JsonObject, *path: str) -> JsonObject:
    """The object at `path` in a document built here (KeyError when there is none)."""
    node = document
    for key in path:
        child = node[key]
        if not isinstance(child, dict):
            raise KeyError(key)
        node = child
    return node


def add_security(document: JsonObject) -> None:
    document.setdefault("components", {})
    at(document, "components")["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`ll_…`) or a team member's OIDC access token.",
        }
    }
    document["security"] = [{"bearer": []}]
    paths = at(document, "paths")
    for path in paths:
        operations = at(paths, path)
        for method in operations:
            at(operations, method)["x-required-role"] = required_role(method, path)


def add_lead_body(document: JsonObject) -> None:
    """POST /v1/leads reads its raw body (signatures cover the bytes): say what it takes."""
    schema = LeadIn.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs", {})
    at(document, "components").setdefault("schemas", {})
    schemas = at(document, "components", "schemas")
    schemas.update(definitions)
    schemas["LeadIn"] = schema
    operation = at(document, "paths", "/v1/leads", "post")
    operation["requestBody"] = LEADS_BODY
    operation["security"] = [{"bearer": []}, {}]  # {}: Standard Webhooks signed instead


def write(path: Path) -> None:
    path.write_text(json.dumps(build_document(), indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    write(Path(sys.argv[1]))
