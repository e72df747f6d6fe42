"""opt-outs recorded at the door; the moment a provider request is about to leave

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Set when the intake recorded this inbound SMS's opt-out with the event itself, so the
    # worker does not apply it a second time (possibly after a later START).
    op.add_column(
        "inbound_events",
        sa.Column("optout_recorded_at", sa.DateTime(timezone=True), nullable=True),
    )
    # Committed just before the provider call: a `sending` row without it never left.
    op.add_column(
        "outbound_messages",
        sa.Column("provider_call_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_outbound_messages_unknown",
        "outbound_messages",
        ["updated_at"],
        unique=False,
        postgresql_where=sa.text("state = 'unknown'"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbound_messages_unknown", table_name="outbound_messages")
    op.drop_column("outbound_messages", "provider_call_at")
    op.drop_column("inbound_events", "optout_recorded_at")
