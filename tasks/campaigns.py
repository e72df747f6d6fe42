"""launch_campaign: turn a campaign into paced outbound SMS rows, or email rows, once.

Pacing: the launch books consecutive slots on the sending number (`sender_pacing`, shared by
every campaign on that number) at LEADLINE_CAMPAIGN_RATE_PER_SENDER messages/s and gives each
row its slot as `next_attempt_at`; each send is enqueued with the matching delay. Recipients
already suppressed get `blocked` rows and no slot. The opt-out check at claim time still
applies, so a STOP that arrives mid-campaign blocks the rest.

Email campaigns are not paced here (Postmark paces its own sending): every row is due at
once. Each email carries its one-click unsubscribe link (tasks/unsubscribe.py) in
List-Unsubscribe and at the foot of its text, and goes out on the broadcast stream.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from leadline.metrics import MESSAGES_SENT
from leadline.settings import Settings
from models.alert_settings import OrgMessaging, load_org_messaging
from models.campaigns import (
    CampaignTarget,
    campaign_targets,
    lock_pending_campaign,
    reserve_send_slots,
)
from models.crypto import OrgCipher
from models.email_content import EmailContent
from models.leads import decrypt_lead
from models.message_templates import render, with_stop_footer
from models.messaging import Campaign
from models.orgs import email_from
from models.outbound_messages import NewOutbound, QueuedOutbound, queue_outbound
from tasks.alerts import EMAIL_SUBJECT_MAX_CHARS, template_values
from tasks.context import TaskContext, get_context
from tasks.sending import enqueue_send
from tasks.unsubscribe import UnsubscribeTarget, make_token, unsubscribe_headers, unsubscribe_url
from workers.runtime import actor

EMAIL_MAX_CHARS = 20_000
EMAIL_NOT_SET_UP = (
    "this organisation sends no email: it needs a From address "
    "(`leadline org settings ORG --email-from`) and POSTMARK_SERVER_TOKEN"
)
UNSUBSCRIBE_FOOTER = "Unsubscribe with one click:"


@actor(queue_name="campaigns", max_retries=5)
def launch_campaign(org_id: str, campaign_id: str) -> None:
    launch(get_context(), uuid.UUID(org_id), uuid.UUID(campaign_id))


def org_sends_email(context: TaskContext, org_id: uuid.UUID) -> bool:
    """Whether an email campaign of this org can go out: Postmark is configured and the org
    has a From address (`leadline org settings ORG --email-from`)."""
    if not context.settings.email_enabled:
        return False
    with context.db.tenant(org_id) as session:
        return email_from(session, org_id) is not None


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
        if campaign.channel == "email":
            messages = build_emails(context.settings, cipher, campaign, targets, org, now)
        else:
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


def build_emails(
    settings: Settings,
    cipher: OrgCipher,
    campaign: Campaign,
    targets: list[CampaignTarget],
    org: OrgMessaging,
    now: datetime,
) -> list[NewOutbound]:
    return [campaign_email(settings, cipher, campaign, target, org, now) for target in targets]


def campaign_email(
    settings: Settings,
    cipher: OrgCipher,
    campaign: Campaign,
    target: CampaignTarget,
    org: OrgMessaging,
    now: datetime,
) -> NewOutbound:
    lead = decrypt_lead(cipher, target.lead)
    assert lead.email is not None and target.lead.email_bidx is not None
    token = make_token(settings, UnsubscribeTarget(cipher.org_id, lead.id), now)
    url = unsubscribe_url(settings, token)
    values = template_values(org, lead, None)
    text = render(campaign.template, values, EMAIL_MAX_CHARS)
    content = EmailContent(
        sender=org.email_from or "",
        subject=render(campaign.name, values, EMAIL_SUBJECT_MAX_CHARS),
        text=f"{text}\n\n{UNSUBSCRIBE_FOOTER} {url}",
        stream="broadcast",
        headers=unsubscribe_headers(url),
    )
    return NewOutbound(
        channel="email",
        purpose="campaign",
        idempotency_key=f"campaign:{campaign.id}:lead:{lead.id}",
        recipient=lead.email,
        recipient_bidx=target.lead.email_bidx,
        body=content.encode(),
        lead_id=lead.id,
        campaign_id=campaign.id,
        state="blocked" if target.suppressed else "queued",
        last_error_code="suppressed" if target.suppressed else None,
    )


def enqueue_paced(org_id: uuid.UUID, queued: list[QueuedOutbound], now: datetime) -> int:
    sent = 0
    for row in queued:
        if row.state != "queued":
            MESSAGES_SENT.labels(channel=row.channel, state=row.state).inc()
            continue
        delay = max((row.next_attempt_at - now).total_seconds(), 0)
        enqueue_send(row.channel, org_id, row.id, delay)
        sent += 1
    return sent
