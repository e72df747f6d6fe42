"""no new tenant rows for an organisation that is being deleted

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from models.rls import open_org_insert_sql, run_all

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = op.get_bind().execute(
        sa.text(
            "SELECT tablename FROM pg_policies WHERE schemaname = current_schema() "
            "AND policyname = 'tenant_isolation' AND tablename <> 'organizations'"
        )
    )
    for (table,) in tables.all():
        run_all(op.execute, open_org_insert_sql(table))


def downgrade() -> None:
    tables = op.get_bind().execute(
        sa.text("SELECT tablename FROM pg_policies WHERE policyname = 'org_open_for_writes'")
    )
    for (table,) in tables.all():
        op.execute(f"DROP POLICY org_open_for_writes ON {table}")
