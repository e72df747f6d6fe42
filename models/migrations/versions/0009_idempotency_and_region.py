"""request fingerprints for Idempotency-Key reuse; an organisation's default phone region

Revision ID: 0009
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "inbound_events", sa.Column("request_fingerprint", sa.LargeBinary(), nullable=True)
    )
    op.add_column("organizations", sa.Column("default_region", sa.String(length=2), nullable=True))


def downgrade() -> None:
    op.drop_column("organizations", "default_region")
    op.drop_column("inbound_events", "request_fingerprint")
