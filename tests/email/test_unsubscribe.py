"""One-click unsubscribe links: GET changes nothing, POST suppresses once, forgeries are 403."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from starlette.testclient import TestClient

from models.audit import AuditEntry
from tasks.context import TaskContext
from tasks.unsubscribe import UnsubscribeTarget, make_token
from tests.support.email import distinct_emails, make_email_leads, suppression_count
from tests.support.services import MakeOrg

pytestmark = pytest.mark.integration


def token_for(context: TaskContext, org_id: uuid.UUID, lead_id: uuid.UUID, **settings: Any) -> str:
    signing = context.settings.model_copy(update=settings)
    return make_token(signing, UnsubscribeTarget(org_id, lead_id), context.clock())


def optout_audits(context: TaskContext, org_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "optout.added")
    with context.db.tenant(org_id) as session:
        return int(session.scalar(query) or 0)


def flip(token: str, position: int) -> str:
    replacement = "A" if token[position] != "A" else "B"
    return token[:position] + replacement + token[position + 1 :]


def test_get_shows_a_form_and_changes_nothing(
    client: TestClient, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    (lead_id,) = make_email_leads(context, org.id, distinct_emails(1))
    token = token_for(context, org.id, lead_id)

    for _ in range(3):  # a link scanner, a prefetch, the person
        page = client.get(f"/unsubscribe/{token}")
        assert page.status_code == 200
        assert '<form method="post">' in page.text
        assert page.headers["cache-control"] == "no-store"

    assert suppression_count(context, org.id) == 0
    assert optout_audits(context, org.id) == 0


def test_post_suppresses_at_once_and_again_changes_nothing(
    client: TestClient, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    (lead_id,) = make_email_leads(context, org.id, distinct_emails(1))
    path = f"/unsubscribe/{token_for(context, org.id, lead_id)}"

    first = client.post(path, data={"List-Unsubscribe": "One-Click"})
    second = client.post(path, data={"List-Unsubscribe": "One-Click"})

    assert first.status_code == second.status_code == 200
    assert first.text == second.text
    assert suppression_count(context, org.id) == 1
    assert optout_audits(context, org.id) == 1


def test_forged_altered_and_expired_tokens_are_refused(
    client: TestClient, make_org: MakeOrg, context: TaskContext
) -> None:
    org, other = make_org(), make_org()
    (lead_id,) = make_email_leads(context, org.id, distinct_emails(1))
    genuine = token_for(context, org.id, lead_id)
    raw = base64.urlsafe_b64decode(genuine + "=" * (-len(genuine) % 4))
    other_org = base64.urlsafe_b64encode(raw[:1] + other.id.bytes + raw[17:]).decode().rstrip("=")
    expired_ttl = context.settings.leadline_unsubscribe_ttl_days + 1
    refused = {
        "flipped in the ids": flip(genuine, 5),
        "flipped in the signature": flip(genuine, len(genuine) - 3),
        "moved to another org": other_org,
        "signed with another secret": token_for(
            context, org.id, lead_id, leadline_unsubscribe_secret=SecretStr("x" * 40)
        ),
        "expired": make_token(
            context.settings,
            UnsubscribeTarget(org.id, lead_id),
            context.clock() - timedelta(days=expired_ttl),
        ),
        "truncated": genuine[:-2],
        "padded": genuine + "==",
        "garbage": "not-a-token",
        "empty-ish": "A",
    }
    for name, token in refused.items():
        for method in ("GET", "POST"):
            answer = client.request(method, f"/unsubscribe/{token}")
            assert answer.status_code == 403, (name, method)

    assert suppression_count(context, org.id) == suppression_count(context, other.id) == 0
    assert client.post(f"/unsubscribe/{genuine}").status_code == 200  # the genuine one works


def test_a_lead_that_is_gone_is_answered_like_any_other(
    client: TestClient, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    path = f"/unsubscribe/{token_for(context, org.id, uuid.uuid4())}"
    assert client.post(path).status_code == 200
    assert suppression_count(context, org.id) == 0
