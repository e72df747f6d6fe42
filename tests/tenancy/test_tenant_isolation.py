"""Row-level security: a scope sees only its tenant, and a missing scope sees nothing."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select, text

from leadline.errors import CryptoError
from models.leads import LeadFields, get_lead, upsert_lead
from models.tables import ApiKey, Lead, Organization
from tests.support.services import MakeOrg

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration


def add_lead(context: TaskContext, org_id: uuid.UUID, phone: str) -> uuid.UUID:
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        return upsert_lead(session, cipher, LeadFields(phone=phone, name="Iso")).lead.id


def test_scope_sees_only_its_own_rows(context: TaskContext, make_org: MakeOrg) -> None:
    org_a, org_b = make_org(), make_org()
    lead_b = add_lead(context, org_b.id, "+14155550111")
    with context.db.tenant(org_a.id) as session:
        assert session.get(Lead, lead_b) is None
        assert session.scalars(select(Lead).where(Lead.org_id == org_b.id)).all() == []
        assert session.scalars(select(Organization.id)).all() == [org_a.id]
        assert session.execute(text("SELECT current_user")).scalar() == "leadline_app"


def test_no_scope_returns_no_rows_not_an_error(context: TaskContext, make_org: MakeOrg) -> None:
    org = make_org()
    add_lead(context, org.id, "+14155550112")
    with context.db.unscoped() as session:
        assert session.scalars(select(Lead)).all() == []
        assert session.scalars(select(ApiKey)).all() == []
        assert session.scalars(select(Organization)).all() == []


def test_app_role_cannot_write_into_another_tenant(context: TaskContext, make_org: MakeOrg) -> None:
    org_a, org_b = make_org(), make_org()
    from sqlalchemy.exc import ProgrammingError

    with (
        pytest.raises(ProgrammingError, match="row-level security"),
        context.db.tenant(org_a.id) as session,
    ):
        session.add(Lead(id=uuid.uuid4(), org_id=org_b.id, source="api"))
        session.flush()


def test_app_role_has_no_bypass_and_owns_nothing(context: TaskContext) -> None:
    with context.db.tenant(uuid.uuid4()) as session:
        role = session.execute(
            text("SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = current_user")
        ).one()
        owned = session.execute(
            text("SELECT count(*) FROM pg_tables WHERE tableowner = current_user")
        ).scalar()
    assert tuple(role) == (False, False)
    assert owned == 0


def test_copied_ciphertext_fails_to_decrypt(context: TaskContext, make_org: MakeOrg) -> None:
    org_a, org_b = make_org(), make_org()
    first = add_lead(context, org_a.id, "+14155550113")
    second = add_lead(context, org_a.id, "+14155550114")
    other_org = add_lead(context, org_b.id, "+14155550115")
    with context.db.tenant(org_a.id) as session:
        stolen = session.get(Lead, first)
        assert stolen is not None
        stolen_phone = stolen.phone_ct
        target = session.get(Lead, second)
        assert target is not None
        target.phone_ct = stolen_phone
    with context.db.tenant(org_a.id) as session:
        cipher = context.keys.cipher(session, org_a.id)
        with pytest.raises(CryptoError, match="does not decrypt"):
            get_lead(session, cipher, second)
    with context.db.tenant(org_b.id) as session:
        target = session.get(Lead, other_org)
        assert target is not None
        target.phone_ct = stolen_phone
    with context.db.tenant(org_b.id) as session, pytest.raises(CryptoError):
        get_lead(session, context.keys.cipher(session, org_b.id), other_org)


def test_no_new_rows_for_an_org_being_deleted(context: TaskContext, make_org: MakeOrg) -> None:
    """A worker still holding a cached key cannot write rows that would outlive the org."""
    from sqlalchemy.exc import ProgrammingError

    org = make_org()
    with context.db.tenant(org.id) as session:
        cipher = context.keys.cipher(session, org.id)  # cached, as in a busy worker
    with context.db.maintenance() as session:
        organization = session.get(Organization, org.id)
        assert organization is not None
        organization.status = "deleting"
    with (
        pytest.raises(ProgrammingError, match="row-level security"),
        context.db.tenant(org.id) as session,
    ):
        upsert_lead(session, cipher, LeadFields(phone="+14155550116"))
    with context.db.tenant(org.id) as session:
        assert session.scalars(select(Lead)).all() == []


def test_tenant_sessions_log_in_as_the_app_login_role_not_the_owner(
    context: TaskContext, database_url: str, make_org: MakeOrg
) -> None:
    """With LEADLINE_APP_DATABASE_URL, injected SQL that resets the role lands on a login role
    that is only a member of leadline_app, never on the owner."""
    import secrets

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from models.db import Database

    role, password = f"leadline_tenant_{uuid.uuid4().hex[:10]}", secrets.token_hex(16)
    owner = make_url(database_url).username
    with context.db.owner_engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN NOINHERIT PASSWORD '{password}'"))
        conn.execute(text(f"GRANT leadline_app TO {role}"))
    app_url = make_url(database_url).set(username=role, password=password)
    db = Database(database_url, app_url.render_as_string(hide_password=False), pool_size=1)
    org = make_org()
    try:
        with db.tenant(org.id) as session:
            assert session.execute(text("SELECT session_user")).scalar() == role
            assert session.execute(text("SELECT current_user")).scalar() == "leadline_app"
            assert session.scalars(select(Organization.id)).all() == [org.id]
            session.execute(text("RESET ROLE"))
            assert session.execute(text("SELECT current_user")).scalar() == role
        with pytest.raises(DBAPIError, match="permission denied"), db.tenant(org.id) as session:
            session.execute(text(f"SET ROLE {owner}"))
        with pytest.raises(DBAPIError, match="permission denied"), db.tenant(org.id) as session:
            session.execute(text("RESET ROLE"))
            session.execute(text("SELECT count(*) FROM organizations"))
    finally:
        db.dispose()
        with context.db.owner_engine.begin() as conn:
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
