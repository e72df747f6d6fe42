"""NUL and other control characters in any string field of any tenant API request body →
422 naming the field, nothing echoed; tab, CR and LF pass in free text (a reply, a note, a
template). Every string field of every body in intake/api_schemas.py has a row here."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import BaseModel
from starlette.testclient import TestClient

from intake import api_schemas
from intake.schemas import StrictModel
from tests.api.seeding import PUBLIC_URL, add_endpoint, add_lead
from tests.api.tenants import Tenant

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration
PHONE = "+14155550123"
# (model, field) → (method, path, body with the value in that field); ids come from `ids`.
TABLE: dict[tuple[type[BaseModel], str], Callable[[dict[str, str], str], tuple[str, str, Any]]] = {
    (api_schemas.LeadPatch, "assignee"): lambda ids, v: (
        "PATCH",
        f"/v1/leads/{ids['lead']}",
        {"assignee": v},
    ),
    (api_schemas.ReplyIn, "body"): lambda ids, v: (
        "POST",
        f"/v1/leads/{ids['lead']}/messages",
        {"body": v},
    ),
    (api_schemas.SuppressionIn, "phone"): lambda ids, v: (
        "POST",
        "/v1/suppressions",
        {"phone": f"+1415{v}5550123", "channel": "phone"},
    ),
    (api_schemas.SuppressionIn, "note"): lambda ids, v: (
        "POST",
        "/v1/suppressions",
        {"phone": "+14155550150", "channel": "phone", "note": v},
    ),
    (api_schemas.EndpointIn, "url"): lambda ids, v: (
        "POST",
        "/v1/webhook-endpoints",
        {"url": PUBLIC_URL + v, "event_types": ["lead.created"]},
    ),
    (api_schemas.EndpointIn, "description"): lambda ids, v: (
        "POST",
        "/v1/webhook-endpoints",
        {"url": PUBLIC_URL, "event_types": ["lead.created"], "description": v},
    ),
    (api_schemas.EndpointPatch, "url"): lambda ids, v: (
        "PATCH",
        f"/v1/webhook-endpoints/{ids['endpoint']}",
        {"url": PUBLIC_URL + v},
    ),
    (api_schemas.EndpointPatch, "description"): lambda ids, v: (
        "PATCH",
        f"/v1/webhook-endpoints/{ids['endpoint']}",
        {"description": v},
    ),
    (api_schemas.AlertRecipientIn, "phone"): lambda ids, v: (
        "POST",
        "/v1/alert-recipients",
        {"phone": f"+1415{v}5550123"},
    ),
    (api_schemas.TemplateIn, "template"): lambda ids, v: (
        "PUT",
        "/v1/message-templates/help_reply",
        {"template": v},
    ),
    (api_schemas.ApiKeyIn, "label"): lambda ids, v: ("POST", "/v1/api-keys", {"label": v}),
    (api_schemas.ApiKeyIn, "replaces"): lambda ids, v: (
        "POST",
        "/v1/api-keys",
        {"replaces": f"ll_{v}"},
    ),
}
FREE_TEXT = {
    (api_schemas.ReplyIn, "body"),
    (api_schemas.SuppressionIn, "note"),
    (api_schemas.TemplateIn, "template"),
}


def is_text(annotation: Any) -> bool:
    if annotation is str:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(is_text(arg) for arg in typing.get_args(annotation))
    return False


def test_the_table_covers_every_string_field_of_every_api_body() -> None:
    models = [
        model
        for model in vars(api_schemas).values()
        if isinstance(model, type) and issubclass(model, StrictModel) and model is not StrictModel
    ]
    fields = {
        (model, name)
        for model in models
        for name, field in model.model_fields.items()
        if is_text(field.annotation)
    }
    assert fields == set(TABLE)


@pytest.fixture
def ids(context: TaskContext, make_tenant: Callable[[], Tenant]) -> tuple[Tenant, dict[str, str]]:
    tenant = make_tenant()
    lead = add_lead(context, tenant.id, phone=PHONE)
    return tenant, {"lead": str(lead), "endpoint": str(add_endpoint(context, tenant.id))}


@pytest.mark.parametrize(
    ("model", "field"), list(TABLE), ids=[f"{m.__name__}.{f}" for m, f in TABLE]
)
@pytest.mark.parametrize("control", ["\x00", "\x1b", "\x7f", "\x85"])
def test_a_control_character_in_any_field_is_422_naming_it(
    client: TestClient, ids: Any, model: type[BaseModel], field: str, control: str
) -> None:
    tenant, values = ids
    method, path, body = TABLE[(model, field)](values, f"a{control}b")
    response = client.request(method, path, json=body, headers=tenant.auth("owner"))
    assert response.status_code == 422, response.text
    assert ["body", field] in [error["loc"] for error in response.json()["fields"]]
    assert f"a{control}b" not in response.text


@pytest.mark.parametrize(("model", "field"), sorted(FREE_TEXT, key=str))
def test_free_text_keeps_tabs_and_line_breaks(
    client: TestClient, ids: Any, model: type[BaseModel], field: str
) -> None:
    tenant, values = ids
    method, path, body = TABLE[(model, field)](values, "Line one\r\n\tline two {program}")
    response = client.request(method, path, json=body, headers=tenant.auth("owner"))
    assert response.status_code < 300, response.text
