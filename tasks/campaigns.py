"""launch_campaign: turn a campaign into paced outbound SMS rows, once.

Pacing: the launch books consecutive slots on the sending number (`sender_pacing`, shared by
every campaign on that number) at LEADLINE_CAMPAIGN_RATE_PER_SENDER messages/s and gives each
row its slot as `next_attempt_at`; each send is enqueued with the matching delay. Recipients
already suppressed get `blocked` rows and no slot. The opt-out check at claim time still
applies, so a STOP that arrives mid-campaign blocks the rest.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from leadline.metrics import MESSAGES_SENT
from models.alert_settings import OrgMessaging, load_org_messaging
from models.campaigns import (
    CampaignTarget,
    campaign_targets,
    lock_pending_campaign,
    reserve_send_slots,
)
from models.crypto import OrgCipher
from models.leads import decrypt_lead
from models.message_templates import render, with_stop_footer
from models.messaging import Campaign
from models.outbound_messages import NewOutbound, QueuedOutbound, queue_outbound
from tasks.alerts import template_values
from tasks.context import TaskContext, get_context
from tasks.sending import enqueue_send
from workers.runtime import actor


@actor(queue_name="campaigns", max_retries=5)
def launch_campaign(org_id: str, campaign_id: str) -> None:
    launch(get_context(), uuid.UUID(org_id), uuid.UUID(campaign_id))


def launch(context: TaskContext, org_id: uuid.UUID, campaign_id: uuid.UUID) -> int:
    """Queue the campaign's rows; returns how many were queued for sending (0 if launched)."""
    now = context.clock()
    with context.db.tenant(org_id) as session:
        campaign = lock_pending_campaign(session, campaign_id)
        if campaign is None:
            return 0
        cipher = context.keys.cipher(session, org_id)
        org = load_org_messaging(session, org_id, context.settings.twilio_from_number)
        targets = list(campaign_targets(session, campaign))
        sendable = sum(not target.suppressed for target in targets)
        first_slot = book_slots(context, org.sender or "default", sendable, now)
        interval = 1.0 / context.settings.leadline_campaign_rate_per_sender
        messages = build_messages(cipher, campaign, targets, org, first_slot, interval)
        queued = queue_outbound(session, cipher, messages, now)
        campaign.status, campaign.targeted, campaign.launched_at = "running", len(targets), now
    return enqueue_paced(org_id, queued, now)


def book_slots(context: TaskContext, sender: str, count: int, now: datetime) -> datetime:
    interval = 1.0 / context.settings.leadline_campaign_rate_per_sender
    with context.db.maintenance() as session:
        return reserve_send_slots(session, sender, count, interval, now)


def build_messages(
    cipher: OrgCipher,
    campaign: Campaign,
    targets: list[CampaignTarget],
    org: OrgMessaging,
    first_slot: datetime,
    interval: float,
) -> list[NewOutbound]:
    messages: list[NewOutbound] = []
    slot = 0
    for target in targets:
        lead = decrypt_lead(cipher, target.lead)
        assert lead.phone is not None and target.lead.phone_bidx is not None
        body = with_stop_footer(render(campaign.template, template_values(org, lead, None)))
        due = first_slot + timedelta(seconds=interval * slot)
        slot += 0 if target.suppressed else 1
        messages.append(
            NewOutbound(
                channel="sms",
                purpose="campaign",
                idempotency_key=f"campaign:{campaign.id}:lead:{lead.id}",
                recipient=lead.phone,
                recipient_bidx=target.lead.phone_bidx,
                body=body,
                sender=org.sender,
                lead_id=lead.id,
                campaign_id=campaign.id,
                next_attempt_at=due,
                state="blocked" if target.suppressed else "queued",
                last_error_code="suppressed" if target.suppressed else None,
            )
        )
    return messages


def enqueue_paced(org_id: uuid.UUID, queued: list[QueuedOutbound], now: datetime) -> int:
    sent = 0
    for row in queued:
        if row.state != "queued":
            MESSAGES_SENT.labels(channel="sms", state=row.state).inc()
            continue
        enqueue_send("sms", org_id, row.id, max((row.next_attempt_at - now).total_seconds(), 0))
        sent += 1
    return sent
