"""when a lead's first message was sent, so an older message processed later replaces it

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Messages of one conversation are processed concurrently, in any order: the upsert keeps
    # the message sent earliest (the provider's send time, not the time it was processed).
    op.add_column(
        "leads",
        sa.Column("first_message_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("leads", "first_message_at")
