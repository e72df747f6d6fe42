"""POST /hooks/postmark: basic auth checked before anything is stored; what suppresses."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import dramatiq
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from starlette.testclient import TestClient

from models.tables import InboundEvent
from tasks.context import TaskContext
from tests.helpers import wait_for
from tests.support.email import (
    WEBHOOK_PASSWORD,
    WEBHOOK_USER,
    basic_auth,
    bounce,
    distinct_emails,
    inbound_count,
    post_hook,
    suppression_count,
)
from tests.support.services import MakeOrg

pytestmark = pytest.mark.integration


def rejected(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "leadline_events_rejected_total", {"source": "postmark", "reason": reason}
    )
    return value or 0.0


def postmark_events(context: TaskContext) -> int:
    query = select(func.count()).select_from(InboundEvent).where(InboundEvent.source == "postmark")
    with context.db.maintenance() as session:
        return int(session.scalar(query) or 0)


def test_wrong_or_missing_credentials_are_401_and_store_nothing(
    client: TestClient, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    (address,) = distinct_emails(1)
    before = postmark_events(context)
    wrong = {
        "wrong password": basic_auth(password=WEBHOOK_PASSWORD + "x"),
        "wrong user": basic_auth(user="someone-else"),
        "both swapped": basic_auth(user=WEBHOOK_PASSWORD, password=WEBHOOK_USER),
        "password only": basic_auth(user="", password=WEBHOOK_PASSWORD),
        "no password": {
            "Authorization": "Basic " + base64.b64encode(WEBHOOK_USER.encode()).decode()
        },
        "not base64": {"Authorization": "Basic !!!"},
        "bearer": {"Authorization": f"Bearer {WEBHOOK_PASSWORD}"},
        "missing": {},
    }
    refused_before = rejected("bad_signature")
    for name, headers in wrong.items():
        answer = post_hook(client, bounce(address, org.id), headers=headers)
        assert answer.status_code == 401, name
        assert answer.headers["www-authenticate"].startswith("Basic ")
    assert rejected("bad_signature") - refused_before == len(wrong) - 1  # one was "missing"

    assert postmark_events(context) == before
    assert suppression_count(context, org.id) == 0


def test_without_configured_credentials_everything_is_refused(
    client: TestClient, make_org: MakeOrg, context: TaskContext
) -> None:
    import dataclasses

    from starlette.testclient import TestClient

    from intake.app import create_app

    unset = context.settings.model_copy(update={"postmark_webhook_password": None})
    app = create_app(dataclasses.replace(context, settings=unset))
    org = make_org()
    with TestClient(app) as bare:
        answer = post_hook(bare, bounce(distinct_emails(1)[0], org.id))
    assert answer.status_code == 401
    assert inbound_count(context, org.id) == 0


@pytest.mark.parametrize(
    ("payload_of", "suppressed"),
    [
        (lambda a, o: bounce(a, o), True),
        (lambda a, o: bounce(a, o, kind="BadEmailAddress", Inactive=False), True),
        (lambda a, o: bounce(a, o, kind="SoftBounce", Inactive=False), False),
        (lambda a, o: bounce(a, o, kind="Transient", Inactive=False), False),
        (lambda a, o: {**bounce(a, o, kind="SpamComplaint"), "RecordType": "SpamComplaint"}, True),
        (lambda a, o: subscription_change(a, o, True, "ManualSuppression"), True),
        (lambda a, o: subscription_change(a, o, True, "HardBounce"), True),
        (lambda a, o: subscription_change(a, o, False, None), False),
    ],
    ids=[
        "hard",
        "bad-address",
        "soft",
        "transient",
        "spam",
        "unsubscribed",
        "sub-hard",
        "reactivated",
    ],
)
def test_what_suppresses_an_address(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    payload_of: Any,
    suppressed: bool,
) -> None:
    org = make_org()
    (address,) = distinct_emails(1)
    payload = payload_of(address, org.id)

    assert post_hook(client, payload).status_code == 200
    assert post_hook(client, payload).status_code == 200  # Postmark's retry: stored once
    wait_for(lambda: inbound_count(context, org.id, "processed") == 1)

    assert inbound_count(context, org.id) == 1
    assert suppression_count(context, org.id) == (1 if suppressed else 0)


def test_a_webhook_naming_no_known_org_is_dropped(client: TestClient, context: TaskContext) -> None:
    before = postmark_events(context)
    unknown = bounce(distinct_emails(1)[0], uuid.uuid4())
    no_metadata = {**unknown, "Metadata": {}}
    other_type = {**unknown, "RecordType": "Delivery"}
    for payload in (unknown, no_metadata, other_type):
        assert post_hook(client, payload).status_code == 200
    assert postmark_events(context) == before


def subscription_change(
    address: str, org_id: uuid.UUID, suppress: bool, reason: str | None
) -> dict[str, Any]:
    return {
        "RecordType": "SubscriptionChange",
        "MessageID": str(uuid.uuid4()),
        "ServerID": 23,
        "MessageStream": "broadcast",
        "ChangedAt": "2026-12-02T13:00:00Z",
        "Recipient": address,
        "Origin": "Recipient",
        "SuppressSending": suppress,
        "SuppressionReason": reason,
        "Tag": "",
        "Metadata": {"leadline_org": str(org_id)},
    }


def test_only_the_fields_it_needs_are_stored(
    client: TestClient, make_org: MakeOrg, context: TaskContext
) -> None:
    from tasks.email_events import KEPT_FIELDS
    from tasks.inbound_events import decrypt_payload

    org = make_org()
    (address,) = distinct_emails(1)
    assert post_hook(client, bounce(address, org.id)).status_code == 200

    with context.db.tenant(org.id) as session:
        event = session.scalars(select(InboundEvent)).one()
        stored = decrypt_payload(context.keys.cipher(session, org.id), event)
        assert address.encode() not in (event.payload_ct or b"")
    assert set(stored) <= set(KEPT_FIELDS)
    assert stored["Email"] == address and "Details" not in stored and "Subject" not in stored
