"""What every answer carries: security headers (2xx, 4xx, 5xx), short errors, request ids."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import dramatiq
import pytest
from starlette.testclient import TestClient

from intake.middleware import SECURITY_HEADERS
from tests.helpers import wait_for
from tests.support.intake import events_settled
from tests.support.services import MakeOrg
from tests.support.signing import stripe_headers, telegram_headers, telegram_update

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration

HEADER_NAMES = [name.decode() for name, _ in SECURITY_HEADERS]


def assert_protected(response: Any) -> None:
    for name in HEADER_NAMES:
        assert name in response.headers, name
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-request-id"]


@pytest.fixture
def failing_client(context: TaskContext) -> Iterator[TestClient]:
    """The real app and middleware plus one route that fails, for tests only."""
    from intake.app import create_fastapi, protect

    app = create_fastapi(context)

    async def explode() -> None:
        raise RuntimeError("boom with Secret detail")

    app.add_api_route("/test-only/explode", explode)
    with TestClient(protect(app, context), raise_server_exceptions=False) as client:
        yield client


def test_security_headers_on_2xx_4xx_and_5xx(
    client: TestClient, failing_client: TestClient
) -> None:
    responses = {
        200: client.get("/healthz"),
        403: client.post(
            "/hooks/stripe", content=b"{}", headers={"Content-Type": "application/json"}
        ),
        404: client.get("/nothing-here"),
        413: client.post(
            "/hooks/meta", content=b"x" * (65 * 1024), headers={"Content-Type": "application/json"}
        ),
        415: client.post("/hooks/stripe", content=b"a=b", headers={"Content-Type": "text/plain"}),
        500: failing_client.get("/test-only/explode"),
    }
    for status, response in responses.items():
        assert response.status_code == status
        assert_protected(response)
    assert responses[500].json() == {"error": "internal error"}
    assert "Secret" not in responses[500].text


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/hooks/stripe", "application/x-www-form-urlencoded"),
        ("/hooks/meta", "text/plain"),
        ("/hooks/twilio/sms", "application/xml"),
        ("/hooks/telegram/6a1f3c52-0b7e-4d0c-9a55-3f1e2d4c5b6a", "multipart/form-data"),
        ("/v1/leads", "text/plain"),
    ],
)
def test_wrong_content_type_is_415(
    client: TestClient, make_org: MakeOrg, path: str, content_type: str
) -> None:
    headers = {"Content-Type": content_type, **make_org().auth}
    response = client.post(path, content=b"Secret=1", headers=headers)
    assert response.status_code == 415
    assert "Secret" not in response.text and len(response.content) < 100


def test_error_bodies_never_echo_input(client: TestClient) -> None:
    body = b'{"id": "evt_Secret<script>", "type": "x"}'
    for response in (
        client.post("/hooks/stripe", content=body, headers=stripe_headers(body)),  # 200, ignored
        client.post("/hooks/stripe", content=body + b"x", headers=stripe_headers(body)),  # 403
    ):
        assert "Secret" not in response.text and "script" not in response.text


def test_request_id_reaches_request_and_worker_log_lines(
    client: TestClient,
    worker: dramatiq.Worker,
    make_org: MakeOrg,
    context: TaskContext,
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    org = make_org()
    request_id = f"req-{uuid.uuid4().hex[:16]}"
    body = json.dumps(telegram_update(1, 555001, "/start")).encode()
    path = f"/hooks/telegram/{org.id}"
    refused = client.post(
        path, content=body, headers={"Content-Type": "application/json", "X-Request-ID": request_id}
    )
    accepted = client.post(
        path, content=body, headers={**telegram_headers(), "X-Request-ID": request_id}
    )
    assert refused.status_code == 403 and accepted.status_code == 200
    assert accepted.headers["x-request-id"] == request_id
    wait_for(lambda: events_settled(context, org.id, 1))

    def worker_lines() -> list[dict[str, Any]]:
        return [line for line in log_lines() if line.get("event") == "inbound event done"]

    wait_for(worker_lines)  # the actor logs after its transaction commits
    lines = log_lines()
    request_lines = [line for line in lines if line.get("path") == path]
    warning_lines = [line for line in lines if line.get("event") == "inbound request refused"]
    message_lines = [line for line in lines if line.get("actor") == "process_event"]
    assert len(request_lines) == 2 and warning_lines and message_lines
    for line in request_lines + warning_lines + message_lines:
        assert line.get("request_id") == request_id, line
    assert all("message_id" in line for line in message_lines)


def test_disabled_provider_routes_are_not_served(app_with: Callable[..., TestClient]) -> None:
    client = app_with(leadline_intake_providers="stripe")
    assert client.post("/hooks/meta", content=b"{}").status_code == 404
    assert client.post("/hooks/twilio/sms", content=b"").status_code == 404
    assert (
        client.post(
            "/hooks/stripe", content=b"{}", headers={"Content-Type": "application/json"}
        ).status_code
        == 403
    )
