"""Where an org's alerts go and what they say: alert numbers, alert emails, linked chats,
templates."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from leadline.errors import NotFoundError
from models.audit import record_audit
from models.cache import Cache
from models.channels import OrgPhoneNumber, TelegramChat
from models.crypto import OrgCipher
from models.leads import email_index, phone_index
from models.message_templates import DEFAULT_FREQUENCY, DEFAULT_TEMPLATES, validate_template
from models.messaging import AlertEmail, AlertNumber, MessagingSettings
from models.normalize import normalize_phone, sender_address
from models.tables import Organization

ALERT_TABLE = "alert_numbers"
ALERT_EMAIL_TABLE = "alert_emails"
CHAT_TABLE = "telegram_chats"


@dataclass(frozen=True)
class AlertTarget:
    """A decrypted destination: an alert number or a linked Telegram chat."""

    row_id: uuid.UUID
    address: str
    bidx: bytes


@dataclass(frozen=True)
class OrgMessaging:
    """Everything fan-out needs to address and word an org's messages."""

    org_name: str
    program: str
    contact: str
    frequency: str
    autoreply: bool
    sender: str | None
    templates: dict[str, str]
    # The org's From address for email (None: it sends no email).
    email_from: str | None = None

    def template(self, name: str) -> str:
        return self.templates.get(name) or DEFAULT_TEMPLATES[name]


def add_alert_number(
    session: Session, cipher: OrgCipher, number: str, actor: str = "cli"
) -> uuid.UUID:
    """Idempotent: adding a number twice keeps one row. Raises InvalidPhoneNumber."""
    e164 = normalize_phone(number)
    row_id = uuid.uuid4()
    session.execute(
        insert(AlertNumber)
        .values(
            id=row_id,
            org_id=cipher.org_id,
            number_ct=cipher.encrypt_text(e164, ALERT_TABLE, "number_ct", row_id),
            number_bidx=phone_index(cipher, e164),
        )
        .on_conflict_do_nothing(constraint="uq_alert_numbers_number")
    )
    found = session.scalar(
        select(AlertNumber.id).where(AlertNumber.number_bidx == phone_index(cipher, e164))
    )
    assert found is not None
    record_audit(session, actor, "alerts.number_added", org_id=cipher.org_id, target=str(found))
    return found


def remove_alert_number(
    session: Session, cipher: OrgCipher, number: str, actor: str = "cli"
) -> uuid.UUID:
    removed = session.execute(
        delete(AlertNumber)
        .where(AlertNumber.number_bidx == phone_index(cipher, number))
        .returning(AlertNumber.id)
    ).scalar_one_or_none()
    if removed is None:
        raise NotFoundError("that number is not an alert number of this organisation")
    record_audit(session, actor, "alerts.number_removed", org_id=cipher.org_id, target=str(removed))
    return removed


def add_alert_email(
    session: Session, cipher: OrgCipher, address: str, actor: str = "cli"
) -> uuid.UUID:
    """Idempotent: an address added twice keeps one row. Raises InvalidEmailAddress."""
    checked = sender_address(address)
    bidx = email_index(cipher, checked)
    row_id = uuid.uuid4()
    session.execute(
        insert(AlertEmail)
        .values(
            id=row_id,
            org_id=cipher.org_id,
            address_ct=cipher.encrypt_text(checked, ALERT_EMAIL_TABLE, "address_ct", row_id),
            address_bidx=bidx,
        )
        .on_conflict_do_nothing(constraint="uq_alert_emails_address")
    )
    found = session.scalar(select(AlertEmail.id).where(AlertEmail.address_bidx == bidx))
    assert found is not None
    record_audit(session, actor, "alerts.email_added", org_id=cipher.org_id, target=str(found))
    return found


def remove_alert_email(
    session: Session, cipher: OrgCipher, address: str, actor: str = "cli"
) -> uuid.UUID:
    removed = session.execute(
        delete(AlertEmail)
        .where(AlertEmail.address_bidx == email_index(cipher, address))
        .returning(AlertEmail.id)
    ).scalar_one_or_none()
    if removed is None:
        raise NotFoundError("that address is not an alert email of this organisation")
    record_audit(session, actor, "alerts.email_removed", org_id=cipher.org_id, target=str(removed))
    return removed


def alert_emails(session: Session, cipher: OrgCipher) -> list[AlertTarget]:
    rows = session.scalars(select(AlertEmail).order_by(AlertEmail.created_at)).all()
    return [
        AlertTarget(
            row.id,
            cipher.decrypt(row.address_ct, ALERT_EMAIL_TABLE, "address_ct", row.id).decode(),
            row.address_bidx,
        )
        for row in rows
    ]


def alert_numbers(session: Session, cipher: OrgCipher) -> list[AlertTarget]:
    rows = session.scalars(select(AlertNumber).order_by(AlertNumber.created_at)).all()
    return [
        AlertTarget(
            row.id,
            cipher.decrypt(row.number_ct, ALERT_TABLE, "number_ct", row.id).decode(),
            row.number_bidx,
        )
        for row in rows
    ]


def linked_chats(session: Session, cipher: OrgCipher) -> list[AlertTarget]:
    query = select(TelegramChat).where(TelegramChat.status == "linked")
    return [
        AlertTarget(
            row.id,
            cipher.decrypt(row.chat_id_ct, CHAT_TABLE, "chat_id_ct", row.id).decode(),
            row.chat_bidx,
        )
        for row in session.scalars(query.order_by(TelegramChat.created_at)).all()
    ]


def _settings_row(session: Session, org_id: uuid.UUID) -> MessagingSettings:
    row = session.get(MessagingSettings, org_id)
    if row is None:
        row = MessagingSettings(org_id=org_id, templates={}, autoreply=False)
        session.add(row)
        session.flush()
    return row


def set_template(
    session: Session, org_id: uuid.UUID, name: str, template: str | None, actor: str = "cli"
) -> None:
    """Set one template, or reset it to the default with None. Raises TemplateError."""
    if template is not None:
        validate_template(name, template)
    elif name not in DEFAULT_TEMPLATES:
        validate_template(name, "-")
    row = _settings_row(session, org_id)
    templates = dict(row.templates)
    if template is None:
        templates.pop(name, None)
    else:
        templates[name] = template
    row.templates = templates
    record_audit(session, actor, "alerts.template_set", org_id=org_id, target=name)


def update_program(
    session: Session,
    org_id: uuid.UUID,
    *,
    program: str | None = None,
    contact: str | None = None,
    frequency: str | None = None,
    autoreply: bool | None = None,
    actor: str = "cli",
) -> None:
    row = _settings_row(session, org_id)
    changes = {
        "program_name": program,
        "help_contact": contact,
        "frequency": frequency,
        "autoreply": autoreply,
    }
    for column, value in changes.items():
        if value is not None:
            setattr(row, column, value)
    changed = sorted(column for column, value in changes.items() if value is not None)
    record_audit(
        session, actor, "alerts.settings_updated", org_id=org_id, details={"fields": changed}
    )


def org_sender(session: Session, default: str | None) -> str | None:
    """The org's own Twilio number (so replies route back to it), else the global sender."""
    number = session.scalar(select(OrgPhoneNumber.number).order_by(OrgPhoneNumber.created_at))
    return number or default


def load_org_messaging(
    session: Session, org_id: uuid.UUID, default_sender: str | None
) -> OrgMessaging:
    org = session.get(Organization, org_id)
    if org is None:
        raise NotFoundError("organisation not found")
    row = session.get(MessagingSettings, org_id)
    sender = org_sender(session, default_sender)
    return OrgMessaging(
        org_name=org.name,
        program=(row.program_name if row and row.program_name else org.name),
        contact=(row.help_contact if row and row.help_contact else sender or org.name),
        frequency=(row.frequency if row and row.frequency else DEFAULT_FREQUENCY),
        autoreply=bool(row and row.autoreply),
        sender=sender,
        templates=dict(row.templates) if row else {},
        email_from=org.email_from,
    )


# What alert fan-out reads for every new lead, cached per org (models/cache.py); a change to
# any of these tables, committed anywhere, makes the next event read them again.
_MESSAGING: Cache[tuple[uuid.UUID, str | None], OrgMessaging] = Cache(
    ("organizations", "messaging_settings", "org_phone_numbers")
)
_ALERT_NUMBERS: Cache[uuid.UUID, tuple[AlertTarget, ...]] = Cache(("alert_numbers",))
_LINKED_CHATS: Cache[uuid.UUID, tuple[AlertTarget, ...]] = Cache(("telegram_chats",))


def cached_org_messaging(
    session: Session, org_id: uuid.UUID, default_sender: str | None
) -> OrgMessaging:
    return _MESSAGING.get(
        (org_id, default_sender), lambda: load_org_messaging(session, org_id, default_sender)
    )


def cached_alert_numbers(session: Session, cipher: OrgCipher) -> tuple[AlertTarget, ...]:
    return _ALERT_NUMBERS.get(cipher.org_id, lambda: tuple(alert_numbers(session, cipher)))


def cached_linked_chats(session: Session, cipher: OrgCipher) -> tuple[AlertTarget, ...]:
    return _LINKED_CHATS.get(cipher.org_id, lambda: tuple(linked_chats(session, cipher)))
