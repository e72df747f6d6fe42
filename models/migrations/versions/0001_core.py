"""core tables, roles and row-level security

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from models.rls import create_roles_sql, run_all, tenant_table_sql

TENANT_TABLES = ("org_keys", "api_keys", "inbound_events", "leads", "audit_log")

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_index(op.f("ix_api_keys_org_id"), "api_keys", ["org_id"], unique=False)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_org_created", "audit_log", ["org_id", "created_at"], unique=False)
    op.create_table(
        "inbound_events",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("payload_ct", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_events")),
        sa.UniqueConstraint("org_id", "source", "external_id", name="uq_inbound_events_external"),
    )
    op.create_index(op.f("ix_inbound_events_org_id"), "inbound_events", ["org_id"], unique=False)
    op.create_index(
        "ix_inbound_events_pending",
        "inbound_events",
        ["received_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "leads",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("name_ct", sa.LargeBinary(), nullable=True),
        sa.Column("phone_ct", sa.LargeBinary(), nullable=True),
        sa.Column("email_ct", sa.LargeBinary(), nullable=True),
        sa.Column("first_message_ct", sa.LargeBinary(), nullable=True),
        sa.Column("phone_bidx", sa.LargeBinary(), nullable=True),
        sa.Column("email_bidx", sa.LargeBinary(), nullable=True),
        sa.Column("platform_bidx", sa.LargeBinary(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("sms_consent", sa.Boolean(), nullable=False),
        sa.Column("consent_text_ct", sa.LargeBinary(), nullable=True),
        sa.Column("consent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consent_source", sa.String(length=64), nullable=True),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
    )
    op.create_index("ix_leads_org_created", "leads", ["org_id", "created_at"], unique=False)
    op.create_index(op.f("ix_leads_org_id"), "leads", ["org_id"], unique=False)
    op.create_index(
        "uq_leads_email",
        "leads",
        ["org_id", "email_bidx"],
        unique=True,
        postgresql_where=sa.text("email_bidx IS NOT NULL"),
    )
    op.create_index(
        "uq_leads_phone",
        "leads",
        ["org_id", "phone_bidx"],
        unique=True,
        postgresql_where=sa.text("phone_bidx IS NOT NULL"),
    )
    op.create_index(
        "uq_leads_platform",
        "leads",
        ["org_id", "platform_bidx"],
        unique=True,
        postgresql_where=sa.text("platform_bidx IS NOT NULL"),
    )
    op.create_table(
        "organizations",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deletion_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
    )
    op.create_table(
        "org_keys",
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kek_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped_dek", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_org_keys_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "version", name=op.f("pk_org_keys")),
    )
    # ### end Alembic commands ###
    run_all(op.execute, create_roles_sql())
    run_all(op.execute, tenant_table_sql("organizations", org_column="id"))
    for table in TENANT_TABLES:
        run_all(op.execute, tenant_table_sql(table))


def downgrade() -> None:
    op.drop_table("org_keys")
    op.drop_table("organizations")
    op.drop_index(
        "uq_leads_platform",
        table_name="leads",
        postgresql_where=sa.text("platform_bidx IS NOT NULL"),
    )
    op.drop_index(
        "uq_leads_phone", table_name="leads", postgresql_where=sa.text("phone_bidx IS NOT NULL")
    )
    op.drop_index(
        "uq_leads_email", table_name="leads", postgresql_where=sa.text("email_bidx IS NOT NULL")
    )
    op.drop_index(op.f("ix_leads_org_id"), table_name="leads")
    op.drop_index("ix_leads_org_created", table_name="leads")
    op.drop_table("leads")
    op.drop_index(
        "ix_inbound_events_pending",
        table_name="inbound_events",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index(op.f("ix_inbound_events_org_id"), table_name="inbound_events")
    op.drop_table("inbound_events")
    op.drop_index("ix_audit_log_org_created", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index(op.f("ix_api_keys_org_id"), table_name="api_keys")
    op.drop_table("api_keys")
    # ### end Alembic commands ###
