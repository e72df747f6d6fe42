"""messaging: outbound messages, suppressions, conversations, alert settings, campaigns

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

from models.rls import maintenance_only_table_sql, run_all, tenant_table_sql

TENANT_TABLES = (
    "outbound_messages",
    "suppressions",
    "conversation_messages",
    "alert_numbers",
    "messaging_settings",
    "campaigns",
)

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_numbers",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("number_ct", sa.LargeBinary(), nullable=False),
        sa.Column("number_bidx", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_numbers")),
        sa.UniqueConstraint("org_id", "number_bidx", name="uq_alert_numbers_number"),
    )
    op.create_index(op.f("ix_alert_numbers_org_id"), "alert_numbers", ["org_id"], unique=False)
    op.create_table(
        "campaigns",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("filter", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("targeted", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("launched_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("org_id", "idempotency_key", name="uq_campaigns_key"),
    )
    op.create_index(op.f("ix_campaigns_org_id"), "campaigns", ["org_id"], unique=False)
    op.create_table(
        "conversation_messages",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("lead_id", sa.UUID(), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("body_ct", sa.LargeBinary(), nullable=False),
        sa.Column("provider_sid", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_messages")),
    )
    op.create_index(
        "ix_conversation_messages_lead",
        "conversation_messages",
        ["lead_id", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_conversation_messages_org_id"), "conversation_messages", ["org_id"], unique=False
    )
    op.create_index(
        "uq_conversation_messages_sid",
        "conversation_messages",
        ["org_id", "provider_sid"],
        unique=True,
        postgresql_where=sa.text("provider_sid IS NOT NULL"),
    )
    op.create_table(
        "messaging_settings",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("templates", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("program_name", sa.String(length=100), nullable=True),
        sa.Column("help_contact", sa.String(length=200), nullable=True),
        sa.Column("frequency", sa.String(length=100), nullable=True),
        sa.Column("autoreply", sa.Boolean(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_messaging_settings")),
    )
    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("recipient_ct", sa.LargeBinary(), nullable=False),
        sa.Column("recipient_bidx", sa.LargeBinary(), nullable=False),
        sa.Column("body_ct", sa.LargeBinary(), nullable=False),
        sa.Column("sender", sa.String(length=20), nullable=True),
        sa.Column("lead_id", sa.UUID(), nullable=True),
        sa.Column("campaign_id", sa.UUID(), nullable=True),
        sa.Column("telegram_chat_id", sa.UUID(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("provider_sid", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error_code", sa.String(length=32), nullable=True),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_messages")),
        sa.UniqueConstraint("org_id", "idempotency_key", name="uq_outbound_messages_key"),
    )
    op.create_index(
        "ix_outbound_messages_campaign", "outbound_messages", ["campaign_id", "state"], unique=False
    )
    op.create_index("ix_outbound_messages_lead", "outbound_messages", ["lead_id"], unique=False)
    op.create_index(
        op.f("ix_outbound_messages_org_id"), "outbound_messages", ["org_id"], unique=False
    )
    op.create_index(
        "ix_outbound_messages_sid",
        "outbound_messages",
        ["org_id", "provider_sid"],
        unique=False,
        postgresql_where=sa.text("provider_sid IS NOT NULL"),
    )
    op.create_index(
        "ix_outbound_messages_waiting",
        "outbound_messages",
        ["state", "next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("state IN ('queued', 'sending')"),
    )
    op.create_table(
        "sender_pacing",
        sa.Column("sender", sa.String(length=20), nullable=False),
        sa.Column("next_slot_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sender", name=op.f("pk_sender_pacing")),
    )
    op.create_table(
        "suppressions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("recipient_bidx", sa.LargeBinary(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("org_id", "recipient_bidx", name="uq_suppressions_recipient"),
    )
    op.create_index(op.f("ix_suppressions_org_id"), "suppressions", ["org_id"], unique=False)
    for table in TENANT_TABLES:
        run_all(op.execute, tenant_table_sql(table))
    run_all(op.execute, maintenance_only_table_sql("sender_pacing"))


def downgrade() -> None:
    for table in ("sender_pacing", *reversed(TENANT_TABLES)):
        op.drop_table(table)
