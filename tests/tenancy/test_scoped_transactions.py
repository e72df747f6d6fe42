"""Scoped transactions without a pool pre-ping: BEGIN and the scope in one round trip, a
connection the server dropped retried once, the scope gone when the transaction ends, and
pooled connections handed back in psycopg's normal (transactional) mode."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from leadline.settings import Settings
from models.db import Database, connect_retrying
from tests.support.services import MakeOrg, psycopg_url

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration


def terminate_backends(admin_url: str, database: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return len(rows)


def current_scope(db: Database, org_id: uuid.UUID) -> tuple[str, str]:
    with db.tenant(org_id) as session:
        row = session.execute(
            text("SELECT current_user, current_setting('app.org_id', true)")
        ).one()
    return str(row[0]), str(row[1])


def test_a_dropped_connection_is_replaced_once_and_the_scope_still_holds(
    settings: Settings, context: TaskContext
) -> None:
    db = Database(str(settings.leadline_database_url), pool_size=2)
    org_id = uuid.uuid4()
    try:
        assert current_scope(db, org_id) == ("leadline_app", str(org_id))
        url = psycopg_url(str(settings.leadline_database_url))
        database = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        assert terminate_backends(url, str(database)) >= 1
        assert current_scope(db, org_id) == ("leadline_app", str(org_id))
    finally:
        db.dispose()


def test_a_readiness_connection_the_server_dropped_is_replaced_once(settings: Settings) -> None:
    db = Database(str(settings.leadline_database_url), pool_size=2)
    try:
        connect_retrying(db.owner_engine).close()  # back in the pool, then dropped by the server
        url = psycopg_url(str(settings.leadline_database_url))
        database = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        assert terminate_backends(url, str(database)) >= 1
        with connect_retrying(db.owner_engine) as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        db.dispose()


def test_an_unreachable_server_still_fails(settings: Settings) -> None:
    db = Database("postgresql://postgres@127.0.0.1:1/nothing", pool_size=1)
    try:
        with pytest.raises(DBAPIError), db.tenant(uuid.uuid4()):
            pass
    finally:
        db.dispose()


def test_the_scope_ends_with_the_transaction_and_the_connection_is_normal_again(
    settings: Settings, context: TaskContext
) -> None:
    db = Database(str(settings.leadline_database_url), pool_size=1)
    try:
        current_scope(db, uuid.uuid4())
        with db.app_engine.connect() as connection:
            dbapi = connection.connection.dbapi_connection
            assert dbapi is not None and dbapi.autocommit is False
            row = connection.execute(
                text("SELECT current_user, current_setting('app.org_id', true)")
            ).one()
            assert row[0] != "leadline_app" and row[1] in (None, "")
    finally:
        db.dispose()


def test_a_failed_statement_rolls_the_whole_transaction_back(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org = make_org()
    from models.tables import Organization

    with pytest.raises(DBAPIError), context.db.tenant(org.id) as session:
        session.execute(
            text("UPDATE organizations SET name = 'Renamed' WHERE id = :id"), {"id": org.id}
        )
        session.execute(text("SELECT 1/0"))
    with context.db.tenant(org.id) as session:
        assert session.get(Organization, org.id).name != "Renamed"
