"""Request and response bodies of the tenant API, as published in docs/openapi.json.

Requests reject unknown fields and control characters (intake.schemas.StrictModel); nothing
here is ever echoed back in an error."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, EmailStr, Field, model_validator

from intake.pagination import Page
from intake.schemas import StrictModel
from leadline.jsondata import JsonObject
from models.lead_listing import LEAD_STATUSES
from models.message_templates import SMS_MAX_CHARS
from models.orgs import MAX_LABEL, Role
from models.webhook_endpoints import EVENT_TYPES, SHAREABLE_FIELDS
from tasks.optouts import REPORTED_CHANNELS

LeadStatus = Literal["new", "contacted", "qualified", "won", "lost"]
ReportedChannel = Literal["email", "phone", "web", "in_person"]
EventType = Literal[
    "lead.created",
    "lead.updated",
    "message.received",
    "message.status",
    "optout.changed",
    "endpoint.disabled",
]
SharedField = Literal["name", "phone", "email", "message", "sms_consent", "created_at"]
assert LeadStatus.__args__ == LEAD_STATUSES  # type: ignore[attr-defined]
assert ReportedChannel.__args__ == REPORTED_CHANNELS  # type: ignore[attr-defined]
assert EventType.__args__ == EVENT_TYPES  # type: ignore[attr-defined]
assert SharedField.__args__ == SHAREABLE_FIELDS  # type: ignore[attr-defined]
Phone = Field(max_length=32, description="E.164 (`+14155550123`).")


class FieldError(BaseModel):
    loc: list[str]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error of the tenant API."""

    error: str = Field(description="A code: unauthorized, forbidden, not_found, opted_out, ...")
    message: str
    fields: list[FieldError] | None
    required_role: Role | Literal["nobody"] | None = Field(
        default=None, description="On 403: the least role the route needs."
    )


class Accepted(BaseModel):
    id: uuid.UUID


class CampaignAccepted(Accepted):
    replayed: bool | None = None


class EventOut(BaseModel):
    id: uuid.UUID
    status: Literal["pending", "processed", "failed"]
    lead_id: uuid.UUID | None


class ConsentEvidenceOut(BaseModel):
    """One SMS consent the lead gave, as it was received."""

    text: str | None
    text_sha256: str | None = Field(description="SHA-256 of `text` (UTF-8), hex.")
    at: datetime | None = Field(description="When it reached Leadline.")
    source: str
    ip: str | None
    user_agent: str | None
    page_url: str | None
    form_id: str | None


class LeadOut(BaseModel):
    id: uuid.UUID
    name: str | None
    phone: str | None
    email: str | None
    first_message: str | None
    source: str
    status: str
    assignee: str | None
    sms_consent: bool
    consent_at: datetime | None
    created_at: datetime
    updated_at: datetime
    consent_evidence: list[ConsentEvidenceOut] | None = Field(
        default=None,
        description="Every consent given, oldest first (GET /v1/leads/{id} only; null in lists).",
    )


class LeadPage(Page):
    data: list[LeadOut]


class LeadPatch(StrictModel):
    status: LeadStatus | None = None
    assignee: str | None = Field(default=None, max_length=200)


class MessageOut(BaseModel):
    id: uuid.UUID
    direction: Literal["inbound", "outbound"]
    channel: str
    body: str
    state: str | None = Field(description="Outbound only: queued, sending, sent, delivered, ...")
    purpose: str | None
    created_at: datetime


class MessagePage(Page):
    data: list[MessageOut]


class ReplyIn(StrictModel):
    free_text = frozenset({"body"})

    body: str = Field(min_length=1, max_length=SMS_MAX_CHARS)
    channel: Literal["sms", "instagram", "messenger", "whatsapp"] = Field(
        default="sms",
        description="Instagram, Messenger and WhatsApp answer the conversation the lead "
        "started there, through the organisation's connection (GET /v1/connections).",
    )


class ReplyOut(BaseModel):
    id: uuid.UUID
    state: str


class SuppressionOut(BaseModel):
    id: uuid.UUID
    lead_id: uuid.UUID | None
    phone: str | None = Field(description="The matching lead's number, if there is one.")
    reason: str
    note: str | None
    created_at: datetime


class SuppressionPage(Page):
    data: list[SuppressionOut]


class SuppressionIn(StrictModel):
    free_text = frozenset({"note"})

    phone: str = Phone
    channel: ReportedChannel = Field(description="How the opt-out reached the business.")
    note: str | None = Field(default=None, max_length=1000)


class EndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    description: str | None
    event_types: list[str]
    shared_fields: list[str]
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    created_at: datetime


class EndpointList(Page):
    data: list[EndpointOut]


class EndpointCreated(EndpointOut):
    secret: str = Field(description="The signing secret, shown once.")


class EndpointIn(StrictModel):
    url: str = Field(min_length=1, max_length=2000)
    event_types: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES))
    description: str | None = Field(default=None, max_length=500)
    shared_fields: list[SharedField] = Field(default_factory=list, max_length=10)


class EndpointPatch(StrictModel):
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    event_types: list[EventType] | None = Field(default=None, min_length=1, max_length=10)
    description: str | None = Field(default=None, max_length=500)
    shared_fields: list[SharedField] | None = Field(default=None, max_length=10)
    enabled: bool | None = None


class SecretOut(BaseModel):
    id: uuid.UUID
    secret: str = Field(
        description="The new signing secret, shown once; the old one signs too for 24 h."
    )


class DeliveryOut(BaseModel):
    id: uuid.UUID
    webhook_id: str
    event_type: str
    state: str
    attempt_count: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class DeliveryPage(Page):
    data: list[DeliveryOut]


class AttemptOut(BaseModel):
    id: uuid.UUID
    started_at: datetime
    duration_ms: int
    outcome: str
    status_code: int | None
    error_class: str | None
    error_text: str | None


class AttemptList(Page):
    data: list[AttemptOut]


class ResendOut(BaseModel):
    id: uuid.UUID
    state: str


class RecoverOut(BaseModel):
    endpoint_id: uuid.UUID
    requeued: int


class AlertRecipientOut(BaseModel):
    """An alert number (`phone`) or an alert email (`email`): exactly one is set."""

    id: uuid.UUID
    phone: str | None = None
    email: str | None = None
    created_at: datetime | None = None


class AlertRecipientList(Page):
    data: list[AlertRecipientOut]


class AlertRecipientIn(StrictModel):
    """A number (SMS alerts) or an email address (email alerts, once the org has a From
    address): exactly one of them."""

    phone: str | None = Field(default=None, max_length=32, description="E.164 (`+14155550123`).")
    email: EmailStr | None = Field(default=None, max_length=254)

    @model_validator(mode="after")
    def one_address(self) -> AlertRecipientIn:
        if (self.phone is None) == (self.email is None):
            raise ValueError("give either phone or email")
        return self


class Removed(BaseModel):
    id: uuid.UUID
    deleted: bool


class TemplateOut(BaseModel):
    kind: str
    template: str
    default: bool = Field(description="True: the built-in text (no custom one is set).")


class TemplateIn(StrictModel):
    free_text = frozenset({"template"})

    template: str | None = Field(
        max_length=4096, description="The text, or null to go back to the default."
    )


class CampaignOut(BaseModel):
    id: uuid.UUID
    name: str
    channel: str = Field(default="sms", description="sms or email")
    status: str
    created_at: datetime
    launched_at: datetime | None
    counts: dict[str, int]


class CampaignPage(Page):
    data: list[CampaignOut]


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    prefix: str
    role: Role
    label: str | None
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None = Field(description="Set on a key replaced by a rotation.")


class ApiKeyList(Page):
    data: list[ApiKeyOut]


class ApiKeyIn(StrictModel):
    role: Role | None = Field(default=None, description="Default owner; with `replaces`, its role.")
    label: str | None = Field(default=None, max_length=MAX_LABEL)
    replaces: str | None = Field(
        default=None,
        max_length=32,
        pattern=r"^ll_[0-9a-f]{8}$",
        description="Rotate: the prefix of an active key, which keeps working 24 h more.",
    )


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key, shown once.")
    replaced_until: datetime | None = Field(
        default=None, description="When the replaced key stops working (rotation only)."
    )


class RevokedKey(BaseModel):
    prefix: str
    revoked: bool


class AuditOut(BaseModel):
    id: uuid.UUID
    actor: str = Field(description="`key:<prefix>`, `oidc:<subject>`, `cli`, a worker's name...")
    action: str
    target: str | None
    details: JsonObject
    created_at: datetime


class AuditPage(Page):
    data: list[AuditOut]


class ErasureOut(BaseModel):
    erasure_request: uuid.UUID
    status: str
    due_by: datetime


class ImportOut(BaseModel):
    id: uuid.UUID
    status: Literal["pending", "running", "done"]
    rows: int = Field(description="Data rows in the file (the header not counted).")
    imported: int = Field(description="New leads written so far.")
    updated: int = Field(description="Rows that completed an existing lead (same phone/email).")
    rejected: int = Field(description="Rows refused; each is a line of the error CSV.")
    errors_url: str = Field(description="The error CSV: line, reason and the row's cells.")
