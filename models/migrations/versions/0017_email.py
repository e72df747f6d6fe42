"""email: the business's sender address, email consent on leads, campaigns by channel, and
the email addresses that receive an organisation's lead alerts

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

from models.rls import run_all, tenant_table_sql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The business's own From address (published by it, not a person's), so kept in clear.
    op.add_column("organizations", sa.Column("email_from", sa.String(254), nullable=True))
    op.add_column(
        "leads",
        sa.Column("email_consent", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("leads", sa.Column("email_consent_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "campaigns",
        sa.Column("channel", sa.String(16), nullable=False, server_default="sms"),
    )
    op.create_table(
        "alert_emails",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("address_ct", sa.LargeBinary(), nullable=False),
        sa.Column("address_bidx", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_emails")),
        sa.UniqueConstraint("org_id", "address_bidx", name="uq_alert_emails_address"),
    )
    op.create_index(op.f("ix_alert_emails_org_id"), "alert_emails", ["org_id"], unique=False)
    run_all(op.execute, tenant_table_sql("alert_emails"))


def downgrade() -> None:
    op.drop_table("alert_emails")
    op.drop_column("campaigns", "channel")
    op.drop_column("leads", "email_consent_at")
    op.drop_column("leads", "email_consent")
    op.drop_column("organizations", "email_from")
