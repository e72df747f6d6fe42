"""Social channels connected by OAuth: the pending authorizations (one row per issued
`state`, consumed once) and the connections (one per Instagram account, Facebook page or
WhatsApp number, its access token encrypted under the org key).

A token is ciphertext bound to its row (AAD: org, table, column, row id); a connection that
is revoked loses its token, one the provider rejected keeps it but is never used again.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
    delete,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from leadline.errors import NotFoundError
from models.audit import record_audit
from models.base import Base, now_column, org_fk, uuid_pk
from models.crypto import OrgCipher

TABLE = "connections"


class ConnectionKind(StrEnum):
    INSTAGRAM = "instagram"
    MESSENGER = "messenger"
    WHATSAPP = "whatsapp"


class ConnectionStatus(StrEnum):
    """active: its token sends; expired: the provider rejected the token (reconnect);
    revoked: the business disconnected it and its token is deleted."""

    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class OAuthState(Base):
    """An authorization in progress: the nonce of a signed `state`, bound to org and
    principal, until the callback consumes it or it expires. Only a hash of the nonce."""

    __tablename__ = "oauth_states"

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    nonce_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, unique=True)
    principal: Mapped[str] = mapped_column(String(200), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = now_column()


class Connection(Base):
    """One account a Meta authorization serves, with the token that sends as it."""

    __tablename__ = TABLE
    __table_args__ = (
        UniqueConstraint("org_id", "kind", "account_id", name="uq_connections_account"),
        Index("ix_connections_status", "status", "updated_at"),
        CheckConstraint("kind IN ('instagram', 'messenger', 'whatsapp')", name="kind"),
        CheckConstraint("status IN ('active', 'expired', 'revoked')", name="status"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    org_id: Mapped[uuid.UUID] = org_fk()
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    # The business's own account (page, Instagram account, WhatsApp phone number id): the id
    # inbound webhooks name, kept in clear like meta_accounts.
    account_id: Mapped[str] = mapped_column(String(64), nullable=False)
    account_name: Mapped[str | None] = mapped_column(String(200))
    # The Meta user who granted access: where revocation goes (DELETE /{user-id}/permissions).
    provider_user_id: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    token_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    last_error_code: Mapped[str | None] = mapped_column(String(32))
    connected_by: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = now_column()
    updated_at: Mapped[datetime] = now_column()


def nonce_digest(nonce: str) -> bytes:
    return hashlib.sha256(nonce.encode()).digest()


def record_oauth_state(
    session: Session,
    org_id: uuid.UUID,
    nonce: str,
    principal: str,
    expires_at: datetime,
) -> None:
    session.add(
        OAuthState(
            org_id=org_id,
            nonce_hash=nonce_digest(nonce),
            principal=principal,
            expires_at=expires_at,
        )
    )


def consume_oauth_state(session: Session, nonce: str, principal: str, now: datetime) -> bool:
    """Tenant session of the org the state names: True once, for an unexpired nonce issued to
    this principal in this org. Concurrent callbacks with one state: one DELETE wins."""
    consumed = session.execute(
        delete(OAuthState)
        .where(
            OAuthState.nonce_hash == nonce_digest(nonce),
            OAuthState.principal == principal,
            OAuthState.expires_at > now,
        )
        .returning(OAuthState.id)
    ).first()
    return consumed is not None


def purge_expired_states(session: Session, now: datetime) -> int:
    result = session.execute(delete(OAuthState).where(OAuthState.expires_at <= now))
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class GrantedAccount:
    """An account the authorization serves, with the token that sends as it (plaintext,
    never logged: repr leaves it out)."""

    kind: ConnectionKind
    account_id: str
    name: str | None
    token: str = ""

    def __repr__(self) -> str:
        return f"GrantedAccount(kind={self.kind!s}, account_id={self.account_id!r})"


@dataclass(frozen=True)
class ConnectionView:
    id: uuid.UUID
    kind: str
    account_id: str
    account_name: str | None
    status: str
    last_error_code: str | None
    created_at: datetime
    updated_at: datetime


def view(row: Connection) -> ConnectionView:
    return ConnectionView(
        row.id,
        row.kind,
        row.account_id,
        row.account_name,
        row.status,
        row.last_error_code,
        row.created_at,
        row.updated_at,
    )


def store_connection(
    session: Session,
    cipher: OrgCipher,
    account: GrantedAccount,
    provider_user_id: str,
    actor: str,
    now: datetime,
) -> uuid.UUID:
    """Insert the connection, or give an existing one (same kind and account) the new token
    and make it active again. Returns its id."""
    new_id = uuid.uuid4()
    row_id: uuid.UUID = session.execute(
        insert(Connection)
        .values(
            id=new_id,
            org_id=cipher.org_id,
            kind=account.kind.value,
            account_id=account.account_id,
            account_name=account.name,
            provider_user_id=provider_user_id,
            status=ConnectionStatus.ACTIVE.value,
            connected_by=actor,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_update(
            constraint="uq_connections_account",
            set_={
                "account_name": account.name,
                "provider_user_id": provider_user_id,
                "status": ConnectionStatus.ACTIVE.value,
                "last_error_code": None,
                "connected_by": actor,
                "updated_at": now,
            },
        )
        .returning(Connection.id)
    ).scalar_one()
    row = session.get(Connection, row_id)
    assert row is not None
    row.token_ct = cipher.encrypt(account.token.encode(), TABLE, "token_ct", row_id)
    session.flush()
    record_audit(
        session,
        actor,
        "connection.connected",
        org_id=cipher.org_id,
        target=str(row_id),
        details={"kind": account.kind.value, "account_id": account.account_id},
    )
    return row_id


def list_connections(session: Session) -> list[ConnectionView]:
    rows = session.scalars(select(Connection).order_by(Connection.created_at, Connection.id))
    return [view(row) for row in rows]


def get_connection(session: Session, connection_id: uuid.UUID) -> Connection:
    row = session.get(Connection, connection_id)
    if row is None:
        raise NotFoundError("no such connection")
    return row


def connection_token(cipher: OrgCipher, row: Connection) -> str | None:
    if row.token_ct is None:
        return None
    return cipher.decrypt(row.token_ct, TABLE, "token_ct", row.id).decode()


def active_connection(session: Session, kind: str, account_id: str | None) -> Connection | None:
    """The active connection of this kind serving `account_id` (any one when None)."""
    query = select(Connection).where(
        Connection.kind == kind, Connection.status == ConnectionStatus.ACTIVE.value
    )
    if account_id is not None:
        query = query.where(Connection.account_id == account_id)
    return session.scalars(query.order_by(Connection.updated_at.desc()).limit(1)).first()


def revoke_grant(session: Session, row: Connection, actor: str, now: datetime) -> list[uuid.UUID]:
    """The provider revoked the user's grant: this connection and every other one the same
    user's grant made lose their tokens and become `revoked`. Returns their ids."""
    siblings = session.scalars(
        select(Connection)
        .where(Connection.provider_user_id == row.provider_user_id)
        .with_for_update()
    ).all()
    for sibling in siblings:
        sibling.token_ct = None
        sibling.status = ConnectionStatus.REVOKED.value
        sibling.updated_at = now
        record_audit(
            session,
            actor,
            "connection.revoked",
            org_id=sibling.org_id,
            target=str(sibling.id),
            details={"kind": sibling.kind, "account_id": sibling.account_id},
        )
    return [sibling.id for sibling in siblings]


def mark_expired(session: Session, connection_id: uuid.UUID, code: str, now: datetime) -> bool:
    """The provider rejected the token (Graph error 190): never used again until reconnected."""
    row = session.get(Connection, connection_id, with_for_update=True)
    if row is None or row.status != ConnectionStatus.ACTIVE.value:
        return False
    row.status = ConnectionStatus.EXPIRED.value
    row.last_error_code = code[:32]
    row.updated_at = now
    record_audit(
        session,
        "system",
        "connection.expired",
        org_id=row.org_id,
        target=str(row.id),
        details={"kind": row.kind, "code": code},
    )
    return True


def expired_connections(session: Session, limit: int = 500) -> list[dict[str, object]]:
    """Maintenance: connections whose token the provider rejected, for operators. No token,
    no PII: ids, kinds, the business's account id, the error code and when."""
    query = (
        select(Connection)
        .where(Connection.status == ConnectionStatus.EXPIRED.value)
        .order_by(Connection.updated_at.desc())
        .limit(limit)
    )
    return [
        {
            "id": str(row.id),
            "org_id": str(row.org_id),
            "kind": row.kind,
            "account_id": row.account_id,
            "error": row.last_error_code,
            "updated_at": row.updated_at.isoformat(),
        }
        for row in session.scalars(query)
    ]
