"""CSV lead imports: the import (status, counters, next line), its file as encrypted chunks
of rows, and its rejected rows (encrypted), all under tenant isolation

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from models.rls import run_all, tenant_table_sql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TABLES = ("lead_imports", "lead_import_chunks", "lead_import_errors")


def upgrade() -> None:
    op.create_table(
        "lead_imports",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("sha256_bidx", sa.LargeBinary(), nullable=False),
        sa.Column("header_ct", sa.LargeBinary(), nullable=False),
        sa.Column("fields", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("imported", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("next_line", sa.Integer(), nullable=False),
        sa.Column("end_line", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_imports")),
        sa.UniqueConstraint("org_id", "sha256_bidx", name="uq_lead_imports_file"),
    )
    op.create_index("ix_lead_imports_org_id", "lead_imports", ["org_id"])
    for table, constraint, columns in (
        ("lead_import_chunks", "uq_lead_import_chunks", ("first_line", sa.Integer())),
        ("lead_import_errors", "uq_lead_import_errors", ("line", sa.Integer())),
    ):
        extra = (
            [sa.Column("rows_ct", sa.LargeBinary(), nullable=False)]
            if table == "lead_import_chunks"
            else [
                sa.Column("reason", sa.String(length=200), nullable=False),
                sa.Column("cells_ct", sa.LargeBinary(), nullable=False),
            ]
        )
        op.create_table(
            table,
            sa.Column("id", sa.UUID(), nullable=False),
            sa.Column("org_id", sa.UUID(), nullable=False),
            sa.Column("import_id", sa.UUID(), nullable=False),
            sa.Column(columns[0], columns[1], nullable=False),
            *extra,
            sa.ForeignKeyConstraint(
                ["import_id"],
                ["lead_imports.id"],
                name=op.f(f"fk_{table}_import_id_lead_imports"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
            sa.UniqueConstraint("import_id", columns[0], name=constraint),
        )
        op.create_index(f"ix_{table}_org_id", table, ["org_id"])
    for table in TABLES:
        run_all(op.execute, tenant_table_sql(table))


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
