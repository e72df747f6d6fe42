"""NUL and other control characters in any string of any request body → 422 naming the field,
nothing stored; tab, CR and LF pass where they belong (message bodies, consent text,
campaign templates)."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, EmailStr, ValidationError
from sqlalchemy import func, select
from starlette.testclient import TestClient

from intake.routes.campaigns import CampaignFilterIn, CampaignIn
from intake.schemas import ConsentIn, LeadIn, StrictModel
from models.message_templates import TemplateError, validate_template
from models.messaging import Campaign
from models.normalize import has_control_characters
from models.tables import InboundEvent
from tests.support.services import MakeOrg, Org

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration

LEAD = {"name": "Ada", "phone": "+14155550123", "email": "ada@example.com", "message": "Hi"}
CAMPAIGN = {"name": "Spring", "template": "Hi {name}", "filter": {"status": "new"}}
BAD = "a\x00b"

# (model, field) → (route, body with `value` in that field). Every string field of every
# request model must have a row: a new field without one fails the coverage test below.
Body = Callable[[str], dict[str, Any]]
TABLE: dict[tuple[type[BaseModel], str], tuple[str, Body]] = {
    (LeadIn, "name"): ("/v1/leads", lambda v: {**LEAD, "name": v}),
    (LeadIn, "phone"): ("/v1/leads", lambda v: {**LEAD, "phone": f"+1415{v}5550123"}),
    (LeadIn, "email"): ("/v1/leads", lambda v: {**LEAD, "email": f"ad{v}a@example.com"}),
    (LeadIn, "message"): ("/v1/leads", lambda v: {**LEAD, "message": v}),
    (LeadIn, "source"): ("/v1/leads", lambda v: {**LEAD, "source": f"web{v}form"}),
    (ConsentIn, "text"): ("/v1/leads", lambda v: {**LEAD, "consent": {"sms": True, "text": v}}),
    (ConsentIn, "ip"): ("/v1/leads", lambda v: {**LEAD, "consent": {"sms": True, "ip": v}}),
    (ConsentIn, "user_agent"): (
        "/v1/leads",
        lambda v: {**LEAD, "consent": {"sms": True, "user_agent": f"Mozilla/5.0 {v}"}},
    ),
    (ConsentIn, "page_url"): (
        "/v1/leads",
        lambda v: {**LEAD, "consent": {"sms": True, "page_url": f"https://acme.example/{v}"}},
    ),
    (ConsentIn, "form_id"): (
        "/v1/leads",
        lambda v: {**LEAD, "consent": {"sms": True, "form_id": f"quote-{v}"}},
    ),
    (CampaignIn, "name"): ("/v1/campaigns", lambda v: {**CAMPAIGN, "name": v}),
    (CampaignIn, "template"): ("/v1/campaigns", lambda v: {**CAMPAIGN, "template": v}),
    (CampaignFilterIn, "status"): (
        "/v1/campaigns",
        lambda v: {**CAMPAIGN, "filter": {"status": v}},
    ),
}
LOCATIONS = {ConsentIn: ["consent"], CampaignFilterIn: ["filter"]}
FREE_TEXT = {(LeadIn, "message"), (ConsentIn, "text"), (CampaignIn, "template")}


def is_text(annotation: Any) -> bool:
    if annotation in (str, EmailStr):
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(is_text(arg) for arg in typing.get_args(annotation))
    return False


def request_models() -> list[type[StrictModel]]:
    return [LeadIn, ConsentIn, CampaignIn, CampaignFilterIn]


def test_the_table_covers_every_string_field_of_every_request_model() -> None:
    def subclasses(cls: type[StrictModel]) -> set[type[StrictModel]]:
        direct = set(cls.__subclasses__())
        return direct.union(*(subclasses(sub) for sub in direct))

    # The tenant API's own bodies: tests/api/test_control_characters.py.
    ours = {model for model in subclasses(StrictModel) if model.__module__ != "intake.api_schemas"}
    assert ours == set(request_models())
    string_fields = {
        (model, name)
        for model in request_models()
        for name, field in model.model_fields.items()
        if is_text(field.annotation)
    }
    assert string_fields == set(TABLE)


def post(client: TestClient, org: Org, path: str, body: dict[str, Any]) -> Any:
    headers = {**org.auth, "Idempotency-Key": f"k-{id(body)}"}
    return client.post(path, json=body, headers=headers)


def stored(context: TaskContext, org: Org) -> int:
    with context.db.tenant(org.id) as session:
        events = session.scalar(select(func.count()).select_from(InboundEvent)) or 0
        campaigns = session.scalar(select(func.count()).select_from(Campaign)) or 0
    return events + campaigns


@pytest.mark.parametrize(
    ("model", "field"), list(TABLE), ids=[f"{m.__name__}.{f}" for m, f in TABLE]
)
@pytest.mark.parametrize("control", ["\x00", "\x07", "\x1b", "\x7f", "\x85"])
def test_a_control_character_in_any_field_is_422_naming_it(
    client: TestClient,
    make_org: MakeOrg,
    context: TaskContext,
    model: type[BaseModel],
    field: str,
    control: str,
) -> None:
    org = make_org()
    path, body = TABLE[(model, field)]
    response = post(client, org, path, body(f"a{control}b"))
    assert response.status_code == 422, response.text
    locations = [error["loc"] for error in response.json()["fields"]]
    assert [*LOCATIONS.get(model, []), field] in locations
    assert f"a{control}b" not in response.text
    assert stored(context, org) == 0


@pytest.mark.parametrize(("model", "field"), sorted(FREE_TEXT, key=str))
def test_free_text_keeps_tabs_and_line_breaks(
    client: TestClient, make_org: MakeOrg, model: type[BaseModel], field: str
) -> None:
    path, body = TABLE[(model, field)]
    response = post(client, make_org(), path, body("Line one\r\n\tline two {name}"))
    assert response.status_code == 202, response.text


def test_a_line_break_in_a_single_line_field_is_refused(
    client: TestClient, make_org: MakeOrg
) -> None:
    response = post(client, make_org(), "/v1/leads", {**LEAD, "name": "Ada\nLovelace"})
    assert response.status_code == 422
    assert response.json()["fields"][0]["loc"] == ["name"]


controls = st.characters(categories=["Cc"]) | st.characters(categories=["Cs"])
safe = st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=20)


@given(before=safe, control=controls, after=safe)
def test_every_control_character_is_refused_in_a_single_line_field(
    before: str, control: str, after: str
) -> None:
    text = before + control + after
    assert has_control_characters(text)
    assert has_control_characters(text, line_breaks_allowed=True) == (control not in "\t\n\r")
    with pytest.raises(ValidationError) as raised:
        LeadIn.model_validate({"email": "ada@example.com", "name": f"x{text}x"})
    assert [error["loc"] for error in raised.value.errors()] == [("name",)]


@given(text=safe)
def test_text_without_controls_passes(text: str) -> None:
    assert not has_control_characters(text)


def test_templates_set_from_the_cli_refuse_control_characters() -> None:
    with pytest.raises(TemplateError, match="control characters"):
        validate_template("owner_alert_sms", "New lead\x00 {name}")
    validate_template("owner_alert_sms", "New lead\n{name}\t{phone}")
