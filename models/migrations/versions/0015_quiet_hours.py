"""quiet hours (per-org window, held messages with not_before, the inbound time a message
answers) and Twilio Messaging Services per number; indexes for releasing held messages and
for the carrier-rejection attention list

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("organizations", sa.Column("quiet_hours_start", sa.Time(), nullable=True))
    op.add_column("organizations", sa.Column("quiet_hours_end", sa.Time(), nullable=True))
    op.add_column(
        "outbound_messages", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "outbound_messages", sa.Column("reply_to_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "org_phone_numbers",
        sa.Column("messaging_service_sid", sa.String(length=34), nullable=True),
    )
    op.create_index(
        "ix_outbound_messages_held",
        "outbound_messages",
        ["not_before"],
        postgresql_where=sa.text("state = 'held'"),
    )
    op.create_index(
        "ix_outbound_messages_carrier_rejected",
        "outbound_messages",
        ["updated_at"],
        postgresql_where=sa.text("last_error_code IN ('30007', '30034')"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbound_messages_carrier_rejected", table_name="outbound_messages")
    op.drop_index("ix_outbound_messages_held", table_name="outbound_messages")
    op.drop_column("org_phone_numbers", "messaging_service_sid")
    op.drop_column("outbound_messages", "reply_to_at")
    op.drop_column("outbound_messages", "not_before")
    op.drop_column("organizations", "quiet_hours_end")
    op.drop_column("organizations", "quiet_hours_start")
