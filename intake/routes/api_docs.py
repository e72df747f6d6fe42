"""The published contract: GET /openapi.json (OpenAPI 3.1) and GET /docs, a reference page
rendered on the server from that document with a template shipped in the package (no
scripts, no CDN: the page's CSP allows only its own stylesheet)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, JSONResponse, Response

from intake.openapi import at, build_document
from leadline.jsondata import JsonObject, as_object

router = APIRouter(include_in_schema=False)
PAGE_CSP = "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'"
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
METHODS = ("get", "post", "put", "patch", "delete")
STYLESHEET = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #1d232a; }
h1 { font-size: 1.5rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #d8dde3; }
h3 { font-size: 1rem; margin: 1.6rem 0 .3rem; font-family: ui-monospace, monospace; }
.method { display: inline-block; min-width: 4.5rem; font-weight: 600; }
.role { background: #eef2ff; border-radius: .3rem; padding: 0 .4rem; font-size: .85rem; }
table { border-collapse: collapse; margin: .3rem 0; }
th, td { border-bottom: 1px solid #e4e7eb; padding: .2rem .6rem; text-align: left; }
td { vertical-align: top; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; font-size: .85rem; }
nav a { margin-right: .6rem; } .muted { color: #6b7480; }
"""


@lru_cache(maxsize=1)
def document() -> JsonObject:
    return build_document()


def operations(doc: JsonObject) -> list[JsonObject]:
    found: list[JsonObject] = []
    paths = at(doc, "paths")
    for path in paths:
        item = at(paths, path)
        for method in METHODS:
            if method in item:
                found.append({"path": path, "method": method.upper(), **at(item, method)})
    return found


def schema_name(content: object) -> str | None:
    """The schema a request body or response names (the template calls this)."""
    schema = as_object(as_object(content).get("application/json")).get("schema")
    ref = as_object(schema).get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


@lru_cache(maxsize=1)
def rendered_page() -> str:
    doc = document()
    schemas = at(doc, "components", "schemas")
    return TEMPLATES.get_template("api_docs.html").render(
        info=doc["info"],
        operations=operations(doc),
        schemas={name: json.dumps(schema, indent=2) for name, schema in sorted(schemas.items())},
        schema_name=schema_name,
    )


@router.get("/openapi.json")
async def openapi() -> Response:
    return JSONResponse(document())


@router.get("/docs")
async def reference() -> Response:
    return HTMLResponse(rendered_page(), headers={"content-security-policy": PAGE_CSP})


@router.get("/docs.css")
async def stylesheet() -> Response:
    return Response(STYLESHEET, media_type="text/css")
