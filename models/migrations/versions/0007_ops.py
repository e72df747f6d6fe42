"""dead letters

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from models.rls import maintenance_only_table_sql, run_all

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    now = sa.text("now()")
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("redis_message_id", sa.String(length=64), nullable=True),
        sa.Column("queue", sa.String(length=100), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("args", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("kwargs", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("replays", sa.Integer(), nullable=False),
        sa.Column("error_class", sa.String(length=200), nullable=False),
        sa.Column("error_message", sa.String(length=500), nullable=False),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column(
            "first_failed_at", sa.DateTime(timezone=True), server_default=now, nullable=False
        ),
        sa.Column("last_failed_at", tz, server_default=now, nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint("message_id", name=op.f("uq_dead_letters_message_id")),
    )
    op.create_index(
        "ix_dead_letters_state_failed", "dead_letters", ["state", "last_failed_at"], unique=False
    )
    run_all(op.execute, maintenance_only_table_sql("dead_letters"))


def downgrade() -> None:
    op.drop_index("ix_dead_letters_state_failed", table_name="dead_letters")
    op.drop_table("dead_letters")
