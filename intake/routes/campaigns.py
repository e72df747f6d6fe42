"""POST /v1/campaigns (launch once per Idempotency-Key, 3/min per org) and GET its counts.

The same key with the same campaign answers the first campaign's id; with a different one,
422 like POST /v1/leads (the campaign's own stored name, template and filter are compared)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import Field, ValidationError, field_validator, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from intake.api_errors import api_error, not_found
from intake.api_schemas import CampaignAccepted, CampaignOut, CampaignPage
from intake.limits import RateLimiter, limiter_of
from intake.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, next_cursor
from intake.principals import CurrentPrincipal, Principal
from intake.responses import error_response
from intake.routes.leads import IDEMPOTENCY_KEY, KEY_REUSED, KEY_REUSED_CODE
from intake.schemas import StrictModel, field_errors
from intake.tenant_calls import TenantCall, in_tenant
from models.campaigns import (
    CampaignSpec,
    campaign_view,
    create_campaign,
    find_campaign_by_key,
    list_campaigns,
)
from models.message_templates import SMS_MAX_CHARS, TemplateError, validate_template
from models.messaging import Campaign
from tasks.after_commit import enqueue_or_defer
from tasks.campaigns import EMAIL_NOT_SET_UP, launch_campaign, org_sends_email
from tasks.context import TaskContext

router = APIRouter()


class CampaignFilterIn(StrictModel):
    # The consent leads must have given: the campaign's channel's (an email campaign takes
    # `email`, or nothing); kept for requests written before campaigns had channels.
    consent: Literal["sms", "email"] | None = None
    created_after: datetime | None = None
    status: str | None = Field(default=None, max_length=20, pattern=r"^[a-z_]+$")


class CampaignIn(StrictModel):
    free_text = frozenset({"template"})

    name: str = Field(min_length=1, max_length=200)
    template: str = Field(min_length=1, max_length=SMS_MAX_CHARS)
    filter: CampaignFilterIn = Field(default_factory=CampaignFilterIn)
    channel: Literal["sms", "email"] = Field(
        default="sms", description="email: to leads with email consent; the name is the subject"
    )

    @model_validator(mode="after")
    def consent_of_the_channel(self) -> CampaignIn:
        if self.filter.consent not in (None, self.channel):
            raise ValueError(f"a {self.channel} campaign needs {self.channel} consent")
        return self

    @field_validator("template")
    @classmethod
    def known_placeholders(cls, value: str) -> str:
        try:
            validate_template("campaign", value)
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        return value

    def spec(self) -> CampaignSpec:
        kept = self.filter.model_dump(mode="json")
        kept["consent"] = self.channel
        return CampaignSpec(self.name, self.template, kept, self.channel)


@router.post("/v1/campaigns", status_code=202, response_model=CampaignAccepted)
async def create(request: Request, principal: CurrentPrincipal) -> Response:
    context: TaskContext = request.app.state.context
    key = request.headers.get("idempotency-key")
    if key is None or not IDEMPOTENCY_KEY.match(key):
        return error_response(400, "Idempotency-Key (1-255 printable ASCII characters) required")
    if not request.headers.get("content-type", "").startswith("application/json"):
        return error_response(415, "content type must be application/json")
    try:
        body = CampaignIn.model_validate_json(await request.body())
    except ValidationError as exc:
        return error_response(422, "invalid request body", fields=field_errors(exc))
    limiter = limiter_of(request)
    return await run_in_threadpool(launch, context, limiter, principal, key, body.spec())


def launch(
    context: TaskContext, limiter: RateLimiter, principal: Principal, key: str, spec: CampaignSpec
) -> Response:
    """Replays answer with the first campaign; only new launches count against the limit."""
    org_id = principal.org_id
    with context.db.tenant(org_id) as session:
        existing = find_campaign_by_key(session, key)
    if existing is not None:
        return replay_response(existing, spec)
    if spec.channel == "email" and not org_sends_email(context, org_id):
        return api_error(422, EMAIL_NOT_SET_UP, code="email_not_configured")
    limiter.hit("campaigns", str(org_id))  # RateLimitExceeded → 429 with Retry-After
    with context.db.tenant(org_id) as session:
        created = create_campaign(session, org_id, key, spec, actor=principal.subject)
    if not created.created:  # a concurrent request with the same key won the insert
        if not created.same_request:
            return api_error(422, KEY_REUSED, code=KEY_REUSED_CODE)
        return JSONResponse({"id": str(created.id), "replayed": True}, status_code=202)
    enqueue_or_defer(launch_campaign, str(org_id), str(created.id))
    return JSONResponse({"id": str(created.id)}, status_code=202)


def replay_response(existing: Campaign, spec: CampaignSpec) -> Response:
    if not spec.same_as(existing):
        return api_error(422, KEY_REUSED, code=KEY_REUSED_CODE)
    return JSONResponse({"id": str(existing.id), "replayed": True}, status_code=202)


@router.get("/v1/campaigns", response_model=CampaignPage)
async def campaigns(
    request: Request,
    principal: CurrentPrincipal,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> CampaignPage:
    """Newest first, with their counts (targeted, queued, sent, delivered, blocked, ...)."""
    position = decode_cursor(cursor)

    def read(call: TenantCall) -> tuple[list[Campaign], list[CampaignOut]]:
        rows = list_campaigns(call.session, position, limit)
        return rows, [CampaignOut(**campaign_view(call.session, row)) for row in rows]

    rows, views = await in_tenant(request, principal, read)
    return CampaignPage(data=views, next_cursor=next_cursor(rows, limit))


@router.get("/v1/campaigns/{campaign_id}", response_model=CampaignOut)
async def show(
    request: Request, principal: CurrentPrincipal, campaign_id: uuid.UUID
) -> CampaignOut:
    def read(call: TenantCall) -> CampaignOut | None:
        campaign = call.session.get(Campaign, campaign_id)
        return CampaignOut(**campaign_view(call.session, campaign)) if campaign else None

    view = await in_tenant(request, principal, read)
    if view is None:
        raise not_found()
    return view
