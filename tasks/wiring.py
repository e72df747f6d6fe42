"""Who handles what, in one place: the handler of each inbound source, the subscribers of
domain events (customers' webhooks) and the listeners of lead changes (the business's alerts).

To add an inbound source, add it to models.tables.InboundSource and map it here; to react to
domain events or lead changes, add a function here. Nothing registers itself on import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from models.tables import InboundSource
from tasks import alerts, billing, email_events, inbound_sms, leads, meta, telegram_link
from tasks.domain_events import DomainEvent, LeadChange
from tasks.inbound_events import InboundHandler
from tasks.webhooks import fanout

INBOUND_HANDLERS: Mapping[str, InboundHandler] = MappingProxyType(
    {
        InboundSource.API: leads.handle_api_lead,
        InboundSource.TWILIO_SMS: inbound_sms.handle_inbound_sms,
        InboundSource.TWILIO_STATUS: inbound_sms.handle_status_callback,
        InboundSource.STRIPE: billing.handle_stripe_event,
        InboundSource.TELEGRAM: telegram_link.handle_telegram_update,
        InboundSource.META: meta.handle_meta_message,
        InboundSource.POSTMARK: email_events.handle_postmark_event,
    }
)
DOMAIN_EVENT_SUBSCRIBERS: tuple[Callable[[DomainEvent], None], ...] = (
    fanout.queue_webhook_deliveries,
)
LEAD_CHANGE_LISTENERS: tuple[Callable[[LeadChange], None], ...] = (alerts.alert_on_lead_change,)
