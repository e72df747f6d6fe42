"""notify the `leadline_cache` channel of every committed change to a table that in-process
caches read (models/cache.py), so every process drops what it cached within a second

Revision ID: 0014
Revises: 0013
"""

from alembic import op

from models.cache import CHANNEL, WATCHED_TABLES

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

FUNCTION = f"""
CREATE OR REPLACE FUNCTION leadline_cache_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME);
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.execute(FUNCTION)
    for table in WATCHED_TABLES:
        op.execute(
            f"CREATE TRIGGER leadline_cache_{table}_write AFTER INSERT OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION leadline_cache_changed()"
        )
        # An UPDATE that changes nothing (a conditional touch, a no-op rewrite) notifies nobody.
        op.execute(
            f"CREATE TRIGGER leadline_cache_{table}_update AFTER UPDATE ON {table} "
            "FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) "
            "EXECUTE FUNCTION leadline_cache_changed()"
        )
        op.execute(
            f"CREATE TRIGGER leadline_cache_{table}_truncate AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION leadline_cache_changed()"
        )


def downgrade() -> None:
    for table in WATCHED_TABLES:
        for kind in ("write", "update", "truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS leadline_cache_{table}_{kind} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS leadline_cache_changed()")
