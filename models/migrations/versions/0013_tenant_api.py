"""the tenant API: API-key roles, labels and rotation overlap, lead assignees, the lead an
event became, notes on recorded opt-outs, longer audit actors (OIDC subjects)

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Keys made before roles existed could do everything: they become `owner`, so existing
    # scripts keep working (docs/api.md).
    op.add_column(
        "api_keys",
        sa.Column("role", sa.String(16), nullable=False, server_default="owner"),
    )
    op.create_check_constraint(
        "ck_api_keys_role", "api_keys", "role IN ('ingest', 'member', 'admin', 'owner')"
    )
    op.add_column("api_keys", sa.Column("label", sa.String(100), nullable=True))
    # A key replaced by a rotation keeps working until then (the overlap).
    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("leads", sa.Column("assignee_ct", sa.LargeBinary(), nullable=True))
    # Not `lead_id`: retention deletes rows of tables with that column when a person is
    # erased, and the event row must stay (it deduplicates the Idempotency-Key).
    op.add_column("inbound_events", sa.Column("processed_lead_id", sa.Uuid(), nullable=True))
    op.add_column("suppressions", sa.Column("note_ct", sa.LargeBinary(), nullable=True))
    op.alter_column("audit_log", "actor", type_=sa.String(200), existing_nullable=False)
    op.create_index("ix_leads_org_created_id", "leads", ["org_id", "created_at", "id"])
    op.drop_index("ix_leads_org_created", table_name="leads")


def downgrade() -> None:
    op.create_index("ix_leads_org_created", "leads", ["org_id", "created_at"])
    op.drop_index("ix_leads_org_created_id", table_name="leads")
    op.alter_column("audit_log", "actor", type_=sa.String(100), existing_nullable=False)
    op.drop_column("suppressions", "note_ct")
    op.drop_column("inbound_events", "processed_lead_id")
    op.drop_column("leads", "assignee_ct")
    op.drop_column("api_keys", "expires_at")
    op.drop_column("api_keys", "label")
    op.drop_constraint("ck_api_keys_role", "api_keys", type_="check")
    op.drop_column("api_keys", "role")
