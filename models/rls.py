"""Roles and row-level security, as SQL the migrations execute.

The application role owns nothing and has no BYPASSRLS; it sees a row only when the
transaction's `app.org_id` equals the row's organisation. The maintenance role, used by
cross-tenant jobs (retention, sweepers, key rotation), has its own permissive policy.
The owner (who runs migrations) is subject to FORCE RLS and has no policy at all.
"""

from __future__ import annotations

from collections.abc import Callable

APP_ROLE = "leadline_app"
MAINTENANCE_ROLE = "leadline_maint"
CURRENT_ORG = "NULLIF(current_setting('app.org_id', true), '')::uuid"


def create_roles_sql() -> list[str]:
    statements = []
    for role in (APP_ROLE, MAINTENANCE_ROLE):
        statements.append(
            f"DO $$ BEGIN CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
        statements.append(f"GRANT {role} TO CURRENT_USER")
        statements.append(f"GRANT USAGE ON SCHEMA public TO {role}")
    return statements


# A row may only be added for an organisation that is not being deleted. Deletion shreds the
# keys and sets this status in one commit; a worker still holding a cached key cannot then
# write rows that would outlive the organisation.
OPEN_ORG = (
    "EXISTS (SELECT 1 FROM organizations o WHERE o.id = {column} "
    "AND o.status NOT IN ('deleting', 'deleted'))"
)


def open_org_insert_sql(table: str, org_column: str = "org_id") -> list[str]:
    return [
        f"DROP POLICY IF EXISTS org_open_for_writes ON {table}",
        f"CREATE POLICY org_open_for_writes ON {table} AS RESTRICTIVE FOR INSERT TO {APP_ROLE} "
        f"WITH CHECK ({OPEN_ORG.format(column=org_column)})",
    ]


def tenant_table_sql(table: str, org_column: str = "org_id") -> list[str]:
    """Statements that put `table` under tenant isolation (organizations itself: no write gate)."""
    gate = open_org_insert_sql(table, org_column) if table != "organizations" else []
    return [*_tenant_isolation_sql(table, org_column), *gate]


def _tenant_isolation_sql(table: str, org_column: str) -> list[str]:
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_isolation ON {table} TO {APP_ROLE} "
        f"USING ({org_column} = {CURRENT_ORG}) WITH CHECK ({org_column} = {CURRENT_ORG})",
        f"CREATE POLICY maintenance ON {table} TO {MAINTENANCE_ROLE} USING (true) "
        "WITH CHECK (true)",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}, {MAINTENANCE_ROLE}",
    ]


def maintenance_only_table_sql(table: str) -> list[str]:
    """A cross-tenant table (job runs, dead letters) that only maintenance sessions touch."""
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY maintenance ON {table} TO {MAINTENANCE_ROLE} USING (true) "
        "WITH CHECK (true)",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {MAINTENANCE_ROLE}",
    ]


def run_all(execute: Callable[[str], object], statements: list[str]) -> None:
    for statement in statements:
        execute(statement)
