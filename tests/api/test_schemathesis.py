"""schemathesis against the app's own OpenAPI document, with an owner key: a few generated
requests per operation; none may answer 5xx, and every answer must match the document
(status code, content type, headers, body schema)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.types import ASGIApp

from intake.openapi import build_document
from models.orgs import create_api_key, create_organization

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# The document the app serves (test_openapi.py checks they are the same), built without
# services so the operations are known when tests are collected.
schema = schemathesis.openapi.from_dict(build_document())


@pytest.fixture(scope="module")
def asgi_app(context: TaskContext) -> ASGIApp:
    from intake.app import create_app

    return create_app(context)


@pytest.fixture(scope="module")
def owner(context: TaskContext) -> dict[str, str]:
    """One organisation for the whole run, with an owner key (what every operation needs)."""
    org_id = uuid.uuid4()
    with context.db.tenant(org_id) as session:
        create_organization(session, context.keyring, org_id, "Schemathesis", actor="test")
        key = create_api_key(session, org_id, "test", "owner")
    return {"Authorization": f"Bearer {key.key}"}


@schema.parametrize()
@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_every_answer_matches_the_document(
    case: Any, asgi_app: ASGIApp, owner: dict[str, str]
) -> None:
    case.call_and_validate(app=asgi_app, headers=owner, checks=CHECKS)
