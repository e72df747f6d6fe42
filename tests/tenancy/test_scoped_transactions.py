"""Scoped transactions without a pool pre-ping: BEGIN and the scope in one round trip (with
an opening statement, when given), a connection the server dropped retried once, the scope
gone when the transaction ends, pooled connections handed back in psycopg's normal
(transactional) mode, and a final statement sent with COMMIT."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from leadline.settings import Settings
from models.db import (
    Database,
    TransactionEnded,
    commit_with,
    connect_retrying,
    psycopg_execute,
    render,
)
from models.leads import LeadFields, upsert_lead
from tests.support.services import MakeOrg, psycopg_url

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from models.tables import Lead
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
        with db.tenant(org_id):  # both pooled connections opened, then dropped by the server
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


def add_lead(context: TaskContext, session: Session, org_id: uuid.UUID, email: str) -> Lead:
    """A new lead in the session's transaction (its INSERT already sent)."""
    cipher = context.keys.cipher(session, org_id)
    return upsert_lead(session, cipher, LeadFields(email=email)).lead


def lead_sources(context: TaskContext, org_id: uuid.UUID) -> list[str]:
    from models.tables import Lead

    with context.db.tenant(org_id) as session:
        return [lead.source for lead in session.query(Lead).all()]


def test_the_opening_statement_runs_in_the_scope_of_the_transaction_it_begins(
    context: TaskContext, make_org: MakeOrg
) -> None:
    """The statement sent with BEGIN sees only the scoped org's rows: another org's id gives
    nothing, as it would one round trip later."""
    org, other = make_org(), make_org()
    query = "SELECT id, current_user FROM organizations WHERE id IN ({}, {})"
    with context.db.tenant_opening_with(org.id, render(query, org.id, other.id)) as (_, rows):
        assert [tuple(row) for row in rows] == [(org.id, "leadline_app")]


def test_commit_with_commits_the_statement_and_what_was_flushed_before_it(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org = make_org()
    with context.db.tenant(org.id) as session:
        lead = add_lead(context, session, org.id, "flight@example.com")
        lead.source = "edited"  # pending in the ORM: flushed by commit_with
        commit_with(session, render("UPDATE leads SET name_ct = NULL WHERE id = {}", lead.id))
        # Committed in that flight: another transaction sees it before this scope has ended.
        assert lead_sources(context, org.id) == ["edited"]
    assert lead_sources(context, org.id) == ["edited"]


def test_a_failed_final_statement_leaves_nothing_of_the_transaction(
    context: TaskContext, make_org: MakeOrg
) -> None:
    org = make_org()
    with pytest.raises(DBAPIError), context.db.tenant(org.id) as session:
        add_lead(context, session, org.id, "half@example.com")
        commit_with(session, "SELECT 1/0")
    assert lead_sources(context, org.id) == []


def test_a_statement_after_commit_with_is_refused_and_the_transaction_stays_committed(
    context: TaskContext, make_org: MakeOrg
) -> None:
    """After its COMMIT the scope (role, org) is gone: a later statement would run unscoped."""
    org = make_org()
    with pytest.raises(TransactionEnded), context.db.tenant(org.id) as session:
        lead = add_lead(context, session, org.id, "late@example.com")
        commit_with(session, render("UPDATE leads SET source = {} WHERE id = {}", "first", lead.id))
        psycopg_execute(session, "UPDATE leads SET source = 'second' WHERE id = %s", (lead.id,))
    with pytest.raises(TransactionEnded), context.db.tenant(org.id) as session:
        add_lead(context, session, org.id, "later@example.com")
        commit_with(session, "SELECT 1")
        session.execute(text("DELETE FROM leads"))
    assert sorted(lead_sources(context, org.id)) == ["api", "first"]
    assert current_scope(context.db, org.id) == ("leadline_app", str(org.id))  # pool reusable


def test_rendered_literals_are_quoted_and_typed() -> None:
    at = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)
    some_id = uuid.UUID("00000000-0000-4000-8000-000000000001")
    rendered = render("{} {} {} {} {}", some_id, at, None, b"\x00\xff", ["a", "it's"])
    assert rendered == (
        "'00000000-0000-4000-8000-000000000001'::uuid "
        "'2026-12-03T14:00:00+00:00'::timestamptz NULL decode('00ff', 'hex') "
        "ARRAY['a', 'it''s']"
    )


def test_rendered_text_reads_back_as_it_was_given(context: TaskContext, make_org: MakeOrg) -> None:
    """What the server makes of each rendered literal is the value itself (an injection
    attempt included)."""
    org = make_org()
    values = ["plain", "it's", "back\\slash", "\\'); DROP TABLE leads; --", "ünï"]
    query = "SELECT " + ", ".join("{}" for _ in values)
    with context.db.tenant_opening_with(org.id, render(query, *values)) as (_, rows):
        assert list(rows[0]) == values
