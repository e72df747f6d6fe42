"""retention: job runs, backups, erasure requests and tombstones

Revision ID: 0006
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from models.rls import maintenance_only_table_sql, run_all, tenant_table_sql

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None

TENANT_TABLES = ("backups", "erasure_requests", "erasure_tombstones")


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
        sa.UniqueConstraint("job", "scheduled_for", name="uq_job_runs_slot"),
    )
    op.create_table(
        "backups",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backups")),
    )
    op.create_index(op.f("ix_backups_org_id"), "backups", ["org_id"])
    op.create_index(
        "ix_backups_expiry",
        "backups",
        ["expires_at"],
        postgresql_where=sa.text("status = 'available'"),
    )
    op.create_table(
        "erasure_requests",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("lead_id", sa.UUID(), nullable=False),
        sa.Column("requested_by", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_requests")),
    )
    op.create_index(op.f("ix_erasure_requests_org_id"), "erasure_requests", ["org_id"])
    op.create_index(
        "uq_erasure_requests_pending",
        "erasure_requests",
        ["org_id", "lead_id"],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_erasure_requests_due",
        "erasure_requests",
        ["due_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "erasure_tombstones",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("phone_bidx", sa.LargeBinary(), nullable=True),
        sa.Column("email_bidx", sa.LargeBinary(), nullable=True),
        sa.Column("platform_bidx", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_tombstones")),
    )
    op.create_index(op.f("ix_erasure_tombstones_org_id"), "erasure_tombstones", ["org_id"])
    op.create_index(
        "ix_inbound_events_purgeable",
        "inbound_events",
        ["processed_at"],
        postgresql_where=sa.text("payload_ct IS NOT NULL"),
    )
    run_all(op.execute, maintenance_only_table_sql("job_runs"))
    for table in TENANT_TABLES:
        run_all(op.execute, tenant_table_sql(table))


def downgrade() -> None:
    op.drop_index("ix_inbound_events_purgeable", table_name="inbound_events")
    op.drop_table("erasure_tombstones")
    op.drop_table("erasure_requests")
    op.drop_table("backups")
    op.drop_table("job_runs")
