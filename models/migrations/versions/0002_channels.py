"""org phone numbers and telegram chats

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from models.rls import run_all, tenant_table_sql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "org_phone_numbers",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org_phone_numbers")),
        sa.UniqueConstraint("number", name=op.f("uq_org_phone_numbers_number")),
    )
    op.create_index(op.f("ix_org_phone_numbers_org_id"), "org_phone_numbers", ["org_id"])
    op.create_table(
        "telegram_chats",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("chat_id_ct", sa.LargeBinary(), nullable=False),
        sa.Column("chat_bidx", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unlinked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_chats")),
    )
    op.create_index(op.f("ix_telegram_chats_org_id"), "telegram_chats", ["org_id"])
    op.create_index(
        "uq_telegram_chats_chat", "telegram_chats", ["org_id", "chat_bidx"], unique=True
    )
    for table in ("org_phone_numbers", "telegram_chats"):
        run_all(op.execute, tenant_table_sql(table))


def downgrade() -> None:
    op.drop_table("telegram_chats")
    op.drop_table("org_phone_numbers")
