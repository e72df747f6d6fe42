"""The chaos run's webhook receiver tells a sender that died mid-request from a forgery."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.chaos.receiver import WebhookReceiver
from tests.helpers import wait_for

pytestmark = pytest.mark.integration
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(seed=1, failure_rate=0.0)
    receiver.register("/org0", SECRET)
    receiver.start()
    yield receiver
    receiver.stop()


def test_a_body_cut_off_by_a_dying_sender_is_not_a_bad_signature(
    receiver: WebhookReceiver,
) -> None:
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        sock.sendall(b'POST /org0 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"a"')
    wait_for(lambda: receiver.snapshot()[1]["cut_off"] == 1, timeout=5)
    assert receiver.snapshot()[1]["bad_signature"] == 0


def test_a_forged_signature_is_still_refused(receiver: WebhookReceiver) -> None:
    body = b'{"type": "lead.created"}'
    now = datetime.now(UTC)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp()))}
    headers["webhook-signature"] = Webhook("whsec_" + "A" * 32).sign("msg_1", now, body.decode())
    answer = httpx.post(receiver.url("/org0"), content=body, headers=headers)
    assert answer.status_code == 400
    assert receiver.snapshot()[1]["bad_signature"] == 1
