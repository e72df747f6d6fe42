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


def tenant_table_sql(table: str, org_column: str = "org_id") -> list[str]:
    """Statements that put `table` under tenant isolation."""
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
