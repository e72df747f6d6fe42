"""Property: whatever bytes, headers and form fields arrive, the intake never answers 5xx and
never stores anything it could not verify."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from models.routing import rotate_signing_secret
from tests.support.intake import all_event_count
from tests.support.services import MakeOrg

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration

ORG = uuid.uuid4()
CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "application/json; charset=utf-8",
    "text/plain",
    "",
]
QUERIES = ["", "?bodySHA256=0f", f"?org={ORG}", "?bodySHA256=&org=x"]
text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)
form_fields = st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40)), max_size=8)
bodies = st.one_of(
    st.binary(max_size=1024),
    form_fields.map(lambda pairs: urlencode(pairs).encode()),
    st.just(b'{"update_id": 1, "id": "evt_1", "object": "page", "entry": []}'),
)
now = st.builds(lambda: str(int(time.time())))
timestamps = st.one_of(text, now)


def standard_webhook_headers(org: str) -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries(
        {
            "webhook-signature": text,
            "webhook-id": text,
            "webhook-timestamp": timestamps,
            "webhook-org": st.sampled_from([org, org, str(uuid.uuid4()), "x"]),
        }
    )


def requests(org: str) -> st.SearchStrategy[tuple[str, dict[str, str]]]:
    """(path, provider headers) pairs whose signature headers are present but random."""
    stripe_header = st.one_of(text, st.tuples(now, text).map(lambda p: f"t={p[0]},{p[1]}"))
    return st.one_of(
        st.tuples(
            st.sampled_from(["/hooks/twilio/sms", "/hooks/twilio/status"]),
            st.fixed_dictionaries({}, optional={"X-Twilio-Signature": text}),
        ),
        st.tuples(
            st.just("/hooks/stripe"),
            st.fixed_dictionaries({}, optional={"Stripe-Signature": stripe_header}),
        ),
        st.tuples(
            st.sampled_from([f"/hooks/telegram/{ORG}", "/hooks/telegram/not-an-org"]),
            st.fixed_dictionaries({}, optional={"X-Telegram-Bot-Api-Secret-Token": text}),
        ),
        st.tuples(
            st.just("/hooks/meta"),
            st.fixed_dictionaries({}, optional={"X-Hub-Signature-256": text}),
        ),
        st.tuples(
            st.just("/v1/leads"),
            st.one_of(
                st.fixed_dictionaries({"Authorization": text}), standard_webhook_headers(org)
            ),
        ),
    )


@pytest.fixture
def signing_org(context: TaskContext, make_org: MakeOrg) -> str:
    """An org with a Standard Webhooks secret, so random signatures reach the verifier."""
    org = make_org()
    with context.db.tenant(org.id) as session:
        rotate_signing_secret(session, context.keys.cipher(session, org.id), context.clock())
    return str(org.id)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.data(),
    query=st.sampled_from(QUERIES),
    content_type=st.sampled_from(CONTENT_TYPES),
    extra=st.dictionaries(st.sampled_from(["Idempotency-Key", "X-Request-ID", "Accept"]), text),
    body=bodies,
)
def test_random_requests_never_fail_and_never_store(
    client: TestClient,
    context: TaskContext,
    signing_org: str,
    data: Any,
    query: str,
    content_type: str,
    extra: dict[str, str],
    body: bytes,
) -> None:
    path, headers = data.draw(requests(signing_org))
    before = all_event_count(context)
    response = client.post(
        path + query, content=body, headers={**extra, **headers, "Content-Type": content_type}
    )
    assert response.status_code in {400, 401, 403, 404, 415, 422}
    assert all_event_count(context) == before
