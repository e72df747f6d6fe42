"""Postmark's webhooks, once stored (intake/routes/postmark.py): a hard bounce, a spam
complaint or a subscription change that suppresses an address blocks every later email to it
in the organisation (tasks/optouts.py). Nothing Postmark sends lifts a suppression: an address
it reactivates still gets no email from Leadline.

The intake keeps only these fields of a webhook (minimisation): RecordType, Type, Inactive,
SuppressSending, SuppressionReason and the address (Email, or Recipient for a subscription
change).
"""

from __future__ import annotations

from leadline.jsondata import JsonObject, text_of
from leadline.logging import mark_sensitive
from tasks.inbound_events import InboundContext
from tasks.optouts import EmailSuppressionReason, record_email_suppression

ACTOR = "postmark"
RECORD_TYPES = frozenset({"Bounce", "SpamComplaint", "SubscriptionChange"})
KEPT_FIELDS = (
    "RecordType",
    "Type",
    "Inactive",
    "SuppressSending",
    "SuppressionReason",
    "Email",
    "Recipient",
)
# Bounce types that mean the address will never take mail (Postmark deactivates it too).
HARD_BOUNCE_TYPES = frozenset({"HardBounce", "BadEmailAddress", "ManuallyDeactivated"})
SUBSCRIPTION_REASONS: dict[str, EmailSuppressionReason] = {
    "HardBounce": "email_hard_bounce",
    "SpamComplaint": "email_spam_complaint",
    "ManualSuppression": "email_unsubscribe",
}


def kept_fields(payload: JsonObject) -> JsonObject:
    return {name: payload[name] for name in KEPT_FIELDS if name in payload}


def suppression_reason(payload: JsonObject) -> EmailSuppressionReason | None:
    """Why this webhook suppresses its address, or None (a soft bounce, a reactivation)."""
    record_type, kind = text_of(payload, "RecordType"), text_of(payload, "Type")
    if record_type == "SpamComplaint" or kind == "SpamComplaint":
        return "email_spam_complaint"
    if record_type == "SubscriptionChange":
        if payload.get("SuppressSending") is not True:
            return None
        reason = text_of(payload, "SuppressionReason") or "ManualSuppression"
        return SUBSCRIPTION_REASONS.get(reason, "email_unsubscribe")
    if record_type != "Bounce":
        return None
    if kind == "Unsubscribe":
        return "email_unsubscribe"
    if kind in HARD_BOUNCE_TYPES or payload.get("Inactive") is True:
        return "email_hard_bounce"
    return None


def handle_postmark_event(ctx: InboundContext) -> None:
    address = text_of(ctx.payload, "Recipient") or text_of(ctx.payload, "Email")
    mark_sensitive(address)
    reason = suppression_reason(ctx.payload)
    if address is None or reason is None:
        return
    record_email_suppression(
        ctx.session, ctx.cipher, address, reason, ACTOR, ctx.after_commit, ctx.now
    )
