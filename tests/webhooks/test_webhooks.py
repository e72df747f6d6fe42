"""Outbound webhooks end to end: real Postgres, Redis, Dramatiq workers and local receivers.

Safety: receivers listen on 127.0.0.1 only, every delivery client uses a recording network
backend that refuses to dial anything but loopback, and DNS answers come from a fake resolver.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from sqlalchemy import select, update
from standardwebhooks import WebhookVerificationError
from starlette.testclient import TestClient

from models.tables import AuditEntry
from models.webhook_endpoints import get_endpoint
from models.webhooks import WebhookDelivery, WebhookEndpoint
from tasks.context import TaskContext
from tasks.webhooks.http import set_transport_overrides
from tests.helpers import wait_for
from tests.support.leads import ADA, post_lead
from tests.support.netguard import RecordingSockets
from tests.support.services import MakeOrg, Org
from tests.support.webhooks import (
    DEV_WEBHOOKS,
    Reply,
    add_endpoint,
    attempts,
    cancel_other_tests_deliveries,
    deliveries,
    endpoint_row,
    publish_event,
    running_receiver,
    swapped_settings,
    verify,
)
from tests.support.workers import start_worker, stop_worker, worker_threads

pytestmark = [pytest.mark.integration, pytest.mark.both_brokers, pytest.mark.timeout(60)]


@pytest.fixture
def backend() -> Iterator[RecordingSockets]:
    recording = RecordingSockets()
    set_transport_overrides(socket_factory=recording)
    yield recording
    set_transport_overrides()


@pytest.fixture
def dev(context: TaskContext, backend: RecordingSockets) -> Iterator[TaskContext]:
    """Development mode with loopback receivers allowed and a retry schedule of 0.2 s."""
    with swapped_settings(context, **DEV_WEBHOOKS) as swapped:
        yield swapped


def audit_actions(context: TaskContext, org_id: uuid.UUID) -> list[str]:
    with context.db.tenant(org_id) as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.created_at)).all()
        return [row.action for row in rows]


def test_lead_delivery_verifies_and_shares_only_chosen_fields(
    dev: TaskContext,
    worker: dramatiq.Worker,
    client: TestClient,
    make_org: MakeOrg,
    backend: RecordingSockets,
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    org: Org = make_org()
    with running_receiver() as shared_rx, running_receiver() as plain_rx:
        shared_id, shared_secret = add_endpoint(
            dev, org.id, shared_rx.url + "?token=s3cret", shared=("name", "email")
        )
        _, plain_secret = add_endpoint(dev, org.id, plain_rx.url)
        add_endpoint(dev, org.id, plain_rx.url, events=("message.status",))
        assert post_lead(client, org, ADA).status_code == 202

        shared = wait_for(lambda: shared_rx.seen())[0]
        plain = wait_for(lambda: plain_rx.seen())[0]

    payload = verify(shared_secret, shared)
    assert payload["type"] == "lead.created"
    lead = payload["data"]["lead"]
    assert (lead["name"], lead["email"]) == (ADA["name"], ADA["email"])
    assert "phone" not in lead and "message" not in lead
    assert shared.path == "/hooks?token=s3cret"
    assert len(shared.body) < 20_000

    plain_payload = verify(plain_secret, plain)
    assert set(plain_payload["data"]["lead"]) == {"id", "source", "status"}
    assert ADA["name"].encode() not in plain.body
    assert plain.headers["webhook-id"] == shared.headers["webhook-id"]
    assert plain.headers["webhook-id"].startswith("msg_")
    with pytest.raises(WebhookVerificationError):
        verify(plain_secret, shared)

    # Both receivers answered; the second row may be marked delivered a moment later.
    rows = wait_for(
        lambda: (
            len(done := [d for d in deliveries(dev, org.id) if d.state == "delivered"]) == 2
            and done
        )
    )
    assert len(deliveries(dev, org.id)) == 2 == len(rows)
    assert all(ADA["name"].encode() not in row.payload_ct for row in rows)
    assert {row.lead_id for row in rows} == {uuid.UUID(lead["id"])}
    assert {host for host, _ in backend.calls} == {"127.0.0.1"}
    assert "endpoint.created" in audit_actions(dev, org.id)
    assert shared_id in {row.endpoint_id for row in rows}
    logged = json.dumps(log_lines())
    for secret in ("s3cret", shared_secret, ADA["name"], ADA["email"]):
        assert secret not in logged


def test_rotation_signs_with_old_and_new_secret_for_24_hours(
    dev: TaskContext, worker: dramatiq.Worker, make_org: MakeOrg
) -> None:
    from models.webhook_endpoints import rotate_secret

    org: Org = make_org()
    with running_receiver() as rx:
        endpoint_id, old_secret = add_endpoint(dev, org.id, rx.url)
        with dev.db.tenant(org.id) as session:
            cipher = dev.keys.cipher(session, org.id)
            new_secret = rotate_secret(session, cipher, endpoint_id, dev.clock()).secret
        publish_event(dev, org.id, "lead.created", {"lead_id": str(uuid.uuid4())})
        during = wait_for(lambda: rx.seen())[0]

        with dev.db.tenant(org.id) as session:
            session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == endpoint_id)
                .values(previous_secret_expires_at=dev.clock() - timedelta(seconds=1))
            )
        publish_event(dev, org.id, "lead.created", {"lead_id": str(uuid.uuid4())})
        after = wait_for(lambda: rx.seen()[1:])[0]

    assert new_secret != old_secret
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert verify(old_secret, during) == verify(new_secret, during)
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    verify(new_secret, after)
    with pytest.raises(WebhookVerificationError):
        verify(old_secret, after)


def test_receiver_failing_three_times_gets_the_event_once_with_four_attempts(
    dev: TaskContext, worker: dramatiq.Worker, make_org: MakeOrg
) -> None:
    org: Org = make_org()
    script = [Reply(500), Reply(503), Reply(500), Reply(200)]
    with running_receiver(script) as rx:
        _, secret = add_endpoint(dev, org.id, rx.url)
        publish_event(dev, org.id, "lead.created", {"lead_id": str(uuid.uuid4())})
        delivery = wait_for(
            lambda: [d for d in deliveries(dev, org.id) if d.state == "delivered"] or None
        )[0]
        seen = rx.seen()

    logged = attempts(dev, org.id, delivery.id)
    assert [a.status_code for a in logged] == [500, 503, 500, 200]
    assert [a.outcome for a in logged] == ["http_error"] * 3 + ["delivered"]
    assert delivery.attempt_count == 4 and delivery.last_status == 200
    assert len(seen) == 4
    assert {r.headers["webhook-id"] for r in seen} == {delivery.event_id}
    assert len({r.body for r in seen}) == 1
    for request in seen:
        verify(secret, request)
    assert endpoint_row(dev, org.id, delivery.endpoint_id).failing_since is None


def test_exhausted_schedule_fails_the_delivery(
    context: TaskContext, backend: RecordingSockets, worker: dramatiq.Worker, make_org: MakeOrg
) -> None:
    org: Org = make_org()
    settings = {**DEV_WEBHOOKS, "leadline_webhook_retry_schedule": "0.1,0.1"}
    with swapped_settings(context, **settings) as ctx, running_receiver([Reply(500)] * 5) as rx:
        add_endpoint(ctx, org.id, rx.url)
        publish_event(ctx, org.id, "lead.created", {"lead_id": str(uuid.uuid4())})
        failed = wait_for(lambda: [d for d in deliveries(ctx, org.id) if d.state == "failed"])
        assert len(attempts(ctx, org.id, failed[0].id)) == 3
        assert len(rx.seen()) == 3
        assert endpoint_row(ctx, org.id, failed[0].endpoint_id).failing_since is not None


def test_410_disables_the_endpoint_and_announces_it(
    dev: TaskContext, worker: dramatiq.Worker, make_org: MakeOrg
) -> None:
    org: Org = make_org()
    with running_receiver([Reply(410)]) as gone_rx, running_receiver() as watcher_rx:
        gone_id, _ = add_endpoint(dev, org.id, gone_rx.url)
        _, watcher_secret = add_endpoint(dev, org.id, watcher_rx.url, events=("endpoint.disabled",))
        publish_event(dev, org.id, "lead.created", {"lead_id": str(uuid.uuid4())})
        notice = wait_for(lambda: watcher_rx.seen())[0]
        assert len(gone_rx.seen()) == 1

    endpoint = endpoint_row(dev, org.id, gone_id)
    assert not endpoint.enabled and endpoint.disabled_reason == "receiver answered 410 Gone"
    payload = verify(watcher_secret, notice)
    assert payload["type"] == "endpoint.disabled"
    assert payload["data"] == {"endpoint_id": str(gone_id), "reason": endpoint.disabled_reason}
    gone_delivery = next(d for d in deliveries(dev, org.id) if d.endpoint_id == gone_id)
    assert gone_delivery.state == "failed" and gone_delivery.last_status == 410
    assert "endpoint.disabled" in audit_actions(dev, org.id)

    publish_event(dev, org.id, "lead.created", {"lead_id": str(uuid.uuid4())})
    assert [d.endpoint_id for d in deliveries(dev, org.id)].count(gone_id) == 1


def test_endpoint_failing_for_five_days_is_disabled(
    dev: TaskContext, worker: dramatiq.Worker, make_org: MakeOrg
) -> None:
    org: Org = make_org()
    with running_receiver([Reply(500)]) as rx, running_receiver() as watcher_rx:
        endpoint_id, _ = add_endpoint(dev, org.id, rx.url)
        add_endpoint(dev, org.id, watcher_rx.url, events=("endpoint.disabled",))
        with dev.db.tenant(org.id) as session:
            get_endpoint(session, endpoint_id).failing_since = dev.clock() - timedelta(days=5)
        publish_event(dev, org.id, "lead.created", {"lead_id": str(uuid.uuid4())})
        notice = json.loads(wait_for(lambda: watcher_rx.seen())[0].body)

    endpoint = endpoint_row(dev, org.id, endpoint_id)
    assert not endpoint.enabled and endpoint.disabled_reason == "failing for 120 hours"
    assert notice["data"]["endpoint_id"] == str(endpoint_id)
    assert len(rx.seen()) == 1


def test_429_retry_after_sets_the_next_attempt(
    dev: TaskContext, worker: dramatiq.Worker, make_org: MakeOrg
) -> None:
    org: Org = make_org()
    with running_receiver([Reply(429, {"Retry-After": "120"})]) as rx:
        add_endpoint(dev, org.id, rx.url)
        publish_event(dev, org.id, "lead.created", {"lead_id": str(uuid.uuid4())})
        delivery = wait_for(
            lambda: [d for d in deliveries(dev, org.id) if d.attempt_count == 1] or None
        )[0]
        assert len(rx.seen()) == 1

    logged = attempts(dev, org.id, delivery.id)
    assert [a.status_code for a in logged] == [429]
    assert delivery.state == "pending"
    wait = delivery.next_attempt_at - logged[0].started_at
    assert timedelta(seconds=119) < wait < timedelta(seconds=125)


def test_redirect_is_a_failure_and_is_never_followed(
    context: TaskContext, backend: RecordingSockets, worker: dramatiq.Worker, make_org: MakeOrg
) -> None:
    org: Org = make_org()
    settings = {**DEV_WEBHOOKS, "leadline_webhook_retry_schedule": "600"}
    redirects = [Reply(302, {"Location": "http://10.0.0.1/"}), Reply(307, {"Location": "/x"})]
    with swapped_settings(context, **settings) as ctx, running_receiver(redirects) as rx:
        add_endpoint(ctx, org.id, rx.url)
        add_endpoint(ctx, org.id, rx.url)
        publish_event(ctx, org.id, "lead.created", {"lead_id": str(uuid.uuid4())})
        done = wait_for(
            lambda: [d for d in deliveries(ctx, org.id) if d.attempt_count == 1][1:] or None
        )
        assert len(rx.seen()) == 2
        assert {r.path for r in rx.seen()} == {"/hooks"}

    assert sorted(d.last_status or 0 for d in deliveries(ctx, org.id)) == [302, 307]
    assert all(d.state == "pending" for d in done)
    port = int(rx.url.split(":")[2].split("/")[0])
    assert backend.calls == [("127.0.0.1", port)] * len(backend.calls)


def all_retrying_once(context: TaskContext, org_id: uuid.UUID) -> bool:
    rows = deliveries(context, org_id)
    return all(d.attempt_count == 1 and d.state == "pending" for d in rows)


def test_broker_losing_its_messages_mid_schedule_sweeper_restores_every_pending_delivery(
    context: TaskContext, backend: RecordingSockets, broker: dramatiq.Broker, make_org: MakeOrg
) -> None:
    from tasks.webhooks.operations import sweep_due_deliveries

    org: Org = make_org()
    cancel_other_tests_deliveries(context)
    settings = {**DEV_WEBHOOKS, "leadline_webhook_retry_schedule": "0.5,0.5"}
    broker.flush_all()
    with swapped_settings(context, **settings) as ctx, running_receiver([Reply(500)] * 5) as rx:
        add_endpoint(ctx, org.id, rx.url)
        first = start_worker(broker, threads=2)
        for _ in range(5):
            publish_event(ctx, org.id, "lead.created", {"lead_id": str(uuid.uuid4())})
        # A new worker opens a connection per queue first (on RabbitMQ): slow on a busy machine.
        wait_for(lambda: len(rx.seen()) == 5 and all_retrying_once(ctx, org.id), timeout=45)
        stop_worker(broker, first)

        held = lambda: sum(q.waiting + q.delayed for q in broker.queue_stats())  # type: ignore[attr-defined]  # noqa: E731
        wait_for(lambda: held() == 5)  # the retries wait in the broker
        broker.flush_all()  # and the broker loses them

        with worker_threads(broker, threads=2):
            latest = max(d.next_attempt_at for d in deliveries(ctx, org.id))
            wait_for(lambda: ctx.clock() > latest + timedelta(seconds=1), timeout=5)
            assert len(rx.seen()) == 5, "nothing is left in the broker to retry them"
            assert all(d.state == "pending" for d in deliveries(ctx, org.id))

            assert sweep_due_deliveries(ctx) == 5
            wait_for(lambda: all(d.state == "delivered" for d in deliveries(ctx, org.id)))
    assert len(rx.seen()) == 10


def test_stopping_worker_finishes_requests_in_flight(
    dev: TaskContext, broker: dramatiq.Broker, make_org: MakeOrg
) -> None:
    org: Org = make_org()
    broker.flush_all()
    with running_receiver([Reply(200, delay=1.0)]) as rx:
        add_endpoint(dev, org.id, rx.url)
        running = start_worker(broker, threads=2)
        publish_event(dev, org.id, "lead.created", {"lead_id": str(uuid.uuid4())})
        wait_for(lambda: rx.seen())  # the receiver is holding the request now
        stop_worker(broker, running)
        assert [d.state for d in deliveries(dev, org.id)] == ["delivered"]


def test_sweeper_releases_claims_left_by_a_dead_worker(
    dev: TaskContext, worker: dramatiq.Worker, make_org: MakeOrg
) -> None:
    from tasks.webhooks.operations import sweep_due_deliveries

    org: Org = make_org()
    cancel_other_tests_deliveries(dev)
    with running_receiver() as rx:
        add_endpoint(dev, org.id, rx.url, events=("optout.changed",))
        with dev.db.tenant(org.id) as session:
            publish_without_enqueue(dev, session, org.id)
            row = session.scalars(select(WebhookDelivery)).one()
            row.state, row.claimed_at = "delivering", dev.clock() - timedelta(minutes=10)
        assert sweep_due_deliveries(dev) == 1
        wait_for(lambda: deliveries(dev, org.id)[0].state == "delivered")
        assert len(rx.seen()) == 1


def publish_without_enqueue(context: TaskContext, session: Any, org_id: uuid.UUID) -> None:
    """A delivery row whose message never reached Redis (what was to be enqueued is dropped)."""
    from tasks.after_commit import AfterCommit
    from tasks.domain_events import DomainEvent, publish

    cipher = context.keys.cipher(session, org_id)
    data = {"lead_id": str(uuid.uuid4()), "opted_out": True}
    publish(DomainEvent(session, cipher, "optout.changed", data, AfterCommit(), context.clock()))
    session.flush()
