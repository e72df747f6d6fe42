"""when a lead last gave SMS consent, and a way to find every opt-out a number ever sent,
so a campaign targets only leads whose consent is newer than any STOP from their number

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "leads",
        sa.Column("last_consent_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.execute("UPDATE leads SET last_consent_at = consent_at WHERE sms_consent")
    # A START deletes the suppression; the audit log keeps when each opt-out was recorded.
    op.create_index(
        "ix_audit_log_optout_target",
        "audit_log",
        ["org_id", "target", "created_at"],
        postgresql_where=sa.text("action = 'optout.added'"),
    )


def downgrade() -> None:
    op.drop_index("ix_audit_log_optout_target", table_name="audit_log")
    op.drop_column("leads", "last_consent_at")
