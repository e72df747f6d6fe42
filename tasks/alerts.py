"""Alert fan-out: when a lead arrives or replies, queue SMS to the org's alert numbers,
Telegram messages to its linked chats, emails to its alert emails (once it has a From
address and Postmark is configured), and (with consent) an auto-reply to the lead.

Rows are inserted in the transaction that created the lead or message and enqueued after
COMMIT through the after_commit. Idempotency keys make a replayed event queue nothing new.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from models.alert_settings import (
    AlertTarget,
    OrgMessaging,
    alert_emails,
    cached_alert_numbers,
    cached_linked_chats,
    cached_org_messaging,
)
from models.crypto import OrgCipher
from models.email_content import EmailContent
from models.leads import LeadView, decrypt_lead, phone_index
from models.message_templates import TELEGRAM_MAX_CHARS, render
from models.outbound_messages import NewOutbound, queue_outbound
from models.tables import Lead
from tasks.after_commit import AfterCommit
from tasks.context import get_context
from tasks.domain_events import LeadChange
from tasks.sending import add_send

EMAIL_SUBJECT_MAX_CHARS = 200
ALERT_SUBJECTS = {
    "owner_alert": "New lead for {org}: {name}",
    "lead_updated": "Lead updated for {org}: {name}",
    "reply_alert": "Reply from {name}",
}


@dataclass(frozen=True)
class AlertRequest:
    """One thing worth telling the business about: a new lead, an update, or a lead's message."""

    session: Session
    cipher: OrgCipher
    lead: Lead
    message: str | None
    key_prefix: str
    kind: str  # template kind: "owner_alert" (new lead), "lead_updated" or "reply_alert"
    after_commit: AfterCommit
    now: datetime
    autoreply: bool = False

    @property
    def purpose(self) -> str:
        """An update goes to the same people, under the same delivery rules, as a new lead."""
        return "owner_alert" if self.kind == "lead_updated" else self.kind


def alert_on_lead_change(change: LeadChange) -> None:
    if not change.created and not change.message:
        return
    prefix = f"lead:{change.lead.id}"
    if not change.created:
        prefix = f"lead:{change.lead.id}:update:{change.now.isoformat()}"
    request = AlertRequest(
        change.session,
        change.cipher,
        change.lead,
        change.message,
        prefix,
        "owner_alert" if change.created else "lead_updated",
        change.after_commit,
        change.now,
        autoreply=change.created,
    )
    fan_out_alerts(request)


def fan_out_alerts(request: AlertRequest) -> int:
    """Queue the alert rows for `request`; returns how many new rows were queued."""
    settings = get_context().settings
    org = cached_org_messaging(request.session, request.cipher.org_id, settings.twilio_from_number)
    recipients = Recipients(
        cached_alert_numbers(request.session, request.cipher),
        cached_linked_chats(request.session, request.cipher),
        email_recipients(request, org, settings.email_enabled),
    )
    if not recipients.any and not (request.autoreply and org.autoreply):
        return 0  # nobody to tell: nothing to decrypt, render or insert
    lead = decrypt_lead(request.cipher, request.lead)
    values = template_values(org, lead, request.message)
    messages = owner_messages(request, org, recipients, values)
    if request.autoreply and org.autoreply and lead.sms_consent and lead.phone:
        messages.append(autoreply_message(request, org, lead, values))
    queued = queue_outbound(request.session, request.cipher, messages, request.now)
    for row in queued:
        if row.state == "queued":
            add_send(request.after_commit, row.channel, request.cipher.org_id, row.id)
    return len(queued)


def template_values(
    org: OrgMessaging, lead: LeadView, message: str | None
) -> dict[str, str | None]:
    return {
        "org": org.org_name,
        "program": org.program,
        "contact": org.contact,
        "frequency": org.frequency,
        "name": lead.name,
        "phone": lead.phone,
        "email": lead.email,
        "message": message if message is not None else lead.first_message,
        "source": lead.source,
        "lead_id": str(lead.id),
    }


@dataclass(frozen=True)
class Recipients:
    """The org's alert numbers and linked Telegram chats, decrypted."""

    numbers: tuple[AlertTarget, ...]
    chats: tuple[AlertTarget, ...]
    emails: tuple[AlertTarget, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.numbers or self.chats or self.emails)


def email_recipients(
    request: AlertRequest, org: OrgMessaging, email_enabled: bool
) -> tuple[AlertTarget, ...]:
    """The org's alert emails; read only for an org that sends email (the others pay nothing)."""
    if not (email_enabled and org.email_from):
        return ()
    return tuple(alert_emails(request.session, request.cipher))


def owner_messages(
    request: AlertRequest,
    org: OrgMessaging,
    recipients: Recipients,
    values: dict[str, str | None],
) -> list[NewOutbound]:
    sms_body = render(org.template(f"{request.kind}_sms"), values)
    telegram_body = render(org.template(f"{request.kind}_telegram"), values, TELEGRAM_MAX_CHARS)
    messages = [
        NewOutbound(
            channel="sms",
            purpose=request.purpose,
            idempotency_key=f"{request.key_prefix}:owner_sms:{number.row_id}",
            recipient=number.address,
            recipient_bidx=number.bidx,
            body=sms_body,
            sender=org.sender,
            lead_id=request.lead.id,
        )
        for number in recipients.numbers
    ]
    messages.extend(
        NewOutbound(
            channel="telegram",
            purpose=request.purpose,
            idempotency_key=f"{request.key_prefix}:telegram:{chat.row_id}",
            recipient=chat.address,
            recipient_bidx=chat.bidx,
            body=telegram_body,
            lead_id=request.lead.id,
            telegram_chat_id=chat.row_id,
        )
        for chat in recipients.chats
    )
    messages.extend(alert_emails_for(request, org, recipients.emails, values, telegram_body))
    return messages


def alert_emails_for(
    request: AlertRequest,
    org: OrgMessaging,
    emails: tuple[AlertTarget, ...],
    values: dict[str, str | None],
    text: str,
) -> list[NewOutbound]:
    """An alert email says what the Telegram alert says (same template), under a subject."""
    if not emails or org.email_from is None:
        return []
    content = EmailContent(
        sender=org.email_from,
        subject=render(ALERT_SUBJECTS[request.kind], values, EMAIL_SUBJECT_MAX_CHARS),
        text=text,
    )
    return [
        NewOutbound(
            channel="email",
            purpose=request.purpose,
            idempotency_key=f"{request.key_prefix}:email:{email.row_id}",
            recipient=email.address,
            recipient_bidx=email.bidx,
            body=content.encode(),
            lead_id=request.lead.id,
        )
        for email in emails
    ]


def autoreply_message(
    request: AlertRequest, org: OrgMessaging, lead: LeadView, values: dict[str, str | None]
) -> NewOutbound:
    assert lead.phone is not None
    return NewOutbound(
        channel="sms",
        purpose="lead_autoreply",
        idempotency_key=f"lead:{lead.id}:autoreply",
        recipient=lead.phone,
        recipient_bidx=phone_index(request.cipher, lead.phone),
        body=render(org.template("lead_autoreply"), values),
        sender=org.sender,
        lead_id=lead.id,
        # It answers the submission that created the lead (quiet hours: models/quiet_hours.py).
        reply_to_at=request.lead.created_at,
    )


def reply_alert(
    session: Session,
    cipher: OrgCipher,
    lead: Lead,
    conversation_id: uuid.UUID,
    message: str,
    after_commit: AfterCommit,
    now: datetime,
) -> int:
    request = AlertRequest(
        session, cipher, lead, message, f"msg:{conversation_id}", "reply_alert", after_commit, now
    )
    return fan_out_alerts(request)
