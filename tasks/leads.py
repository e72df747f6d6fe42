"""Leads from the API (`POST /v1/leads`), and announcing a new or updated lead from any
source: alerts to the business (a lead change) and webhooks (a domain event)."""

from __future__ import annotations

from datetime import datetime

from leadline.jsondata import as_object, text_of
from leadline.logging import mark_sensitive
from models.leads import ConsentDetails, LeadFields, upsert_lead
from models.tables import Lead
from models.webhooks import EventType
from tasks.domain_events import DomainEvent, LeadChange, notify_lead_change, publish
from tasks.inbound_events import InboundContext


def handle_api_lead(ctx: InboundContext) -> None:
    data = ctx.payload
    mark_sensitive(text_of(data, "name"), text_of(data, "phone"), text_of(data, "email"))
    consent = as_object(data.get("consent"))
    mark_sensitive(text_of(consent, "ip"), text_of(consent, "page_url"))
    received_at = text_of(data, "received_at")
    fields = LeadFields(
        name=text_of(data, "name"),
        phone=text_of(data, "phone"),
        email=text_of(data, "email"),
        message=text_of(data, "message"),
        source=text_of(data, "source") or "api",
        sms_consent=consent.get("sms") is True,
        email_consent=consent.get("email") is True,
        consent_text=text_of(consent, "text"),
        consent_at=datetime.fromisoformat(received_at) if received_at else ctx.now,
        phone_normalized=True,  # by the intake's validation (intake/schemas.py)
        consent_details=ConsentDetails(
            ip=text_of(consent, "ip"),
            user_agent=text_of(consent, "user_agent"),
            page_url=text_of(consent, "page_url"),
            form_id=text_of(consent, "form_id"),
        ),
    )
    result = upsert_lead(ctx.session, ctx.cipher, fields)
    ctx.processed_lead_id = result.lead.id
    announce_lead(ctx, result.lead, result.created, fields.message)


def announce_lead(ctx: InboundContext, lead: Lead, created: bool, message: str | None) -> None:
    """Alerts (lead change) and webhooks (domain event) for a new or updated lead."""
    notify_lead_change(
        LeadChange(ctx.session, ctx.cipher, lead, created, message, ctx.after_commit, ctx.now)
    )
    event_type = EventType.LEAD_CREATED if created else EventType.LEAD_UPDATED
    data = {"lead_id": str(lead.id), "source": lead.source, "inbound_event_id": str(ctx.event.id)}
    publish(DomainEvent(ctx.session, ctx.cipher, event_type, data, ctx.after_commit, ctx.now))
