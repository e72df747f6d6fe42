"""social channels by OAuth: pending authorizations (`oauth_states`), connections with their
tokens encrypted under the org key, where a Meta lead can be answered (their platform id
encrypted, the business account it wrote to, when it last wrote), and the connection an
outbound message goes out through

Revision ID: 0018
Revises: 0017
"""

from datetime import datetime

import sqlalchemy as sa
from alembic import op

from models.rls import run_all, tenant_table_sql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

TENANT_TABLES = ("oauth_states", "connections")


def created_at() -> sa.Column[datetime]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "oauth_states",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("nonce_hash", sa.LargeBinary(), nullable=False),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_states")),
        sa.UniqueConstraint("nonce_hash", name=op.f("uq_oauth_states_nonce_hash")),
    )
    op.create_index(op.f("ix_oauth_states_org_id"), "oauth_states", ["org_id"])
    op.create_table(
        "connections",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("account_name", sa.String(200), nullable=True),
        sa.Column("provider_user_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("token_ct", sa.LargeBinary(), nullable=True),
        sa.Column("last_error_code", sa.String(32), nullable=True),
        sa.Column("connected_by", sa.String(200), nullable=False),
        created_at(),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connections")),
        sa.UniqueConstraint("org_id", "kind", "account_id", name="uq_connections_account"),
        sa.CheckConstraint(
            "kind IN ('instagram', 'messenger', 'whatsapp')", name=op.f("ck_connections_kind")
        ),
        sa.CheckConstraint(
            "status IN ('active', 'expired', 'revoked')", name=op.f("ck_connections_status")
        ),
    )
    op.create_index(op.f("ix_connections_org_id"), "connections", ["org_id"])
    op.create_index("ix_connections_status", "connections", ["status", "updated_at"])
    for table in TENANT_TABLES:
        run_all(op.execute, tenant_table_sql(table))
    op.add_column("leads", sa.Column("platform_user_ct", sa.LargeBinary(), nullable=True))
    op.add_column("leads", sa.Column("platform_account", sa.String(64), nullable=True))
    op.add_column(
        "leads",
        sa.Column("platform_last_inbound_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("outbound_messages", sa.Column("connection_id", sa.UUID(), nullable=True))


def downgrade() -> None:
    op.drop_column("outbound_messages", "connection_id")
    op.drop_column("leads", "platform_last_inbound_at")
    op.drop_column("leads", "platform_account")
    op.drop_column("leads", "platform_user_ct")
    for table in reversed(TENANT_TABLES):
        op.drop_table(table)
