"""Linking Telegram chats to an org's alerts: one-time link codes and chat status changes.

A chat becomes `linked` by sending `/start CODE` with a code from `leadline telegram link-code`
(valid for an hour, once), or when an operator approves it with `leadline telegram link`. A
`/start` without a valid code leaves the chat `pending`; `/stop` makes it `unlinked`.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import DateTime, Index, LargeBinary, select, text, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.audit import record_audit
from models.base import Base, now_column, org_fk, uuid_pk
from models.channels import TelegramChat
from models.crypto import OrgCipher

CHAT_TABLE = "telegram_chats"
LINK_CODE_TTL = timedelta(hours=1)


class TelegramLinkCode(Base):
    """A one-time code that links the chat sending it; only its SHA-256 is stored."""

    __tablename__ = "telegram_link_codes"
    __table_args__ = (Index("uq_telegram_link_codes_hash", "org_id", "code_hash", unique=True),)

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    code_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = now_column()


def hash_code(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


def create_link_code(session: Session, org_id: uuid.UUID, now: datetime) -> str:
    code = secrets.token_urlsafe(18)
    session.add(
        TelegramLinkCode(org_id=org_id, code_hash=hash_code(code), expires_at=now + LINK_CODE_TTL)
    )
    session.flush()
    record_audit(session, "cli", "telegram.link_code_created", org_id=org_id)
    return code


def consume_link_code(session: Session, code: str, now: datetime) -> bool:
    """Tenant session: mark an unexpired, unused code used. False if there is none."""
    used = session.execute(
        update(TelegramLinkCode)
        .where(
            TelegramLinkCode.code_hash == hash_code(code),
            TelegramLinkCode.used_at.is_(None),
            TelegramLinkCode.expires_at > now,
        )
        .values(used_at=now)
        .returning(TelegramLinkCode.id)
    ).first()
    return used is not None


def chat_index(cipher: OrgCipher, chat_id: int | str) -> bytes:
    return cipher.blind_index("telegram_chat", str(chat_id))


def find_chat(session: Session, cipher: OrgCipher, chat_id: int | str) -> TelegramChat | None:
    """The chat's row, locked. Concurrent updates of one chat wait here for each other."""
    index = chat_index(cipher, chat_id)
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"telegram:{cipher.org_id}:{index.hex()}"},
    )
    query = select(TelegramChat).where(TelegramChat.chat_bidx == index)
    return session.scalars(query.with_for_update()).first()


def set_chat_status(
    session: Session, cipher: OrgCipher, chat_id: int | str, status: str, now: datetime
) -> TelegramChat:
    """Create or update the chat's row: `pending`, `linked` or `unlinked`."""
    chat = find_chat(session, cipher, chat_id)
    if chat is None:
        chat = TelegramChat(id=uuid.uuid4(), org_id=cipher.org_id, status=status)
        chat.chat_bidx = chat_index(cipher, chat_id)
        chat.chat_id_ct = cipher.encrypt(str(chat_id).encode(), CHAT_TABLE, "chat_id_ct", chat.id)
        session.add(chat)
    chat.status = status
    if status == "linked":
        chat.linked_at, chat.unlinked_at = now, None
    elif status == "unlinked":
        chat.unlinked_at = now
    session.flush()
    return chat


def list_chats(session: Session) -> list[TelegramChat]:
    return list(session.scalars(select(TelegramChat).order_by(TelegramChat.created_at)))
