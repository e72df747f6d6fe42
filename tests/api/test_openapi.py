"""The published contract: /openapi.json is OpenAPI 3.1 and the committed docs/openapi.json
(`make openapi` regenerates it); /docs is a page rendered from it, with a strict CSP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from intake.permissions import ROUTE_ROLES

pytestmark = pytest.mark.integration
COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_served_document_is_the_committed_one(client: TestClient) -> None:
    served = client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(COMMITTED.read_text()), (
        "docs/openapi.json is stale: run `make openapi` and commit it"
    )


def test_the_document_covers_every_route_with_its_role(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    published = {
        (method.upper(), path): operation["x-required-role"]
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert published == ROUTE_ROLES


def test_the_reference_page_is_rendered_from_it_without_scripts(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith(
        "default-src 'none'; style-src 'self'"
    )
    assert "<script" not in page.text and "http://" not in page.text.replace("http://127", "")
    for method, path in ROUTE_ROLES:
        assert f'<span class="method">{method}</span>{path}' in page.text
    assert client.get("/docs.css").headers["content-type"].startswith("text/css")
