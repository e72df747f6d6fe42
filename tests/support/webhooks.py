"""Helpers for webhook tests: a scriptable receiver on 127.0.0.1 and context/endpoint set-up."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from sqlalchemy import select, update
from standardwebhooks import Webhook

from models.webhook_endpoints import EndpointSpec, UrlPolicy, create_endpoint
from models.webhooks import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tasks.after_commit import AfterCommit
from tasks.context import TaskContext, set_context
from tasks.domain_events import DomainEvent, publish
from tests.support.http import QuietHandler, serving


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Captured:
    path: str
    headers: dict[str, str]
    body: bytes


class _Handler(QuietHandler):
    protocol_version = "HTTP/1.1"
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.record(Captured(self.path, headers, body))
        if reply.delay:
            time.sleep(reply.delay)
        self.reply(reply.status, b"ok", reply.headers)


class Receiver(ThreadingHTTPServer):
    """Answers from a script (then 200), and keeps every request it saw."""

    daemon_threads = True

    def __init__(self, script: list[Reply] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = list(script or [])
        self.captured: list[Captured] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks"

    def record(self, request: Captured) -> Reply:
        with self._lock:
            self.captured.append(request)
            return self.script.pop(0) if self.script else Reply()

    def seen(self) -> list[Captured]:
        with self._lock:
            return list(self.captured)


@contextmanager
def running_receiver(script: list[Reply] | None = None) -> Iterator[Receiver]:
    with serving(Receiver(script)) as server:
        yield server


@contextmanager
def swapped_settings(context: TaskContext, **updates: Any) -> Iterator[TaskContext]:
    """Workers read get_context() per message, so this changes what they see for one test."""
    settings = context.settings.model_copy(update=updates)
    swapped = dataclasses.replace(context, settings=settings)
    set_context(swapped)
    try:
        yield swapped
    finally:
        set_context(context)


DEV_WEBHOOKS: dict[str, Any] = {
    "leadline_allow_private_webhook_targets": True,
    "leadline_webhook_retry_schedule": "0.2,0.2,0.2,0.2,0.2",
    "leadline_webhook_sweep_grace_seconds": 0,
}


def add_endpoint(
    context: TaskContext,
    org_id: uuid.UUID,
    url: str,
    events: tuple[str, ...] = ("lead.created",),
    shared: tuple[str, ...] = (),
    **resolver: Any,
) -> tuple[uuid.UUID, str]:
    policy = UrlPolicy.from_settings(context.settings)
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        new = create_endpoint(
            session, cipher, EndpointSpec(url, events, None, shared), policy, **resolver
        )
    return new.endpoint_id, new.secret


def publish_event(
    context: TaskContext, org_id: uuid.UUID, event_type: str, data: dict[str, Any]
) -> uuid.UUID:
    after_commit = AfterCommit()
    event_id = uuid.uuid4()
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        publish(
            DomainEvent(session, cipher, event_type, data, after_commit, context.clock(), event_id)
        )
    after_commit.flush()
    return event_id


def deliveries(context: TaskContext, org_id: uuid.UUID) -> list[WebhookDelivery]:
    with context.db.tenant(org_id) as session:
        query = select(WebhookDelivery).order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        return list(session.scalars(query).all())


def in_state(
    context: TaskContext, org_id: uuid.UUID, state: str, count: int = 1
) -> list[WebhookDelivery]:
    """The org's deliveries in `state`, or [] until there are exactly `count` of them."""
    rows = [d for d in deliveries(context, org_id) if d.state == state]
    return rows if len(rows) == count else []


def attempts(
    context: TaskContext, org_id: uuid.UUID, delivery_id: uuid.UUID
) -> list[WebhookAttempt]:
    with context.db.tenant(org_id) as session:
        query = (
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.started_at)
        )
        return list(session.scalars(query).all())


def endpoint_row(
    context: TaskContext, org_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    with context.db.tenant(org_id) as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        return endpoint


def verify(secret: str, request: Captured) -> dict[str, Any]:
    result: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return result


def cancel_other_tests_deliveries(context: TaskContext) -> None:
    """The run's database is shared: deliveries earlier tests left pending or claimed (their
    receivers long gone) would be swept with this test's and occupy its worker. Cancelled,
    they are out of every sweep."""
    with context.db.maintenance() as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.state.in_([DeliveryState.PENDING, DeliveryState.DELIVERING]))
            .values(state=DeliveryState.CANCELLED, claimed_at=None)
        )
