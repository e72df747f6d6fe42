"""A lead as a form would post it, and posting it."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from tests.support.services import Org

ADA = {
    "name": "Ada Quartermain",
    "phone": "+1 415 555 0199",
    "email": "ada.quartermain@example.org",
    "message": "Please quote my roof",
    "consent": {"sms": True, "text": "I agree to receive texts"},
}


def post_lead(client: TestClient, org: Org, body: dict[str, Any], **headers: str) -> Any:
    return client.post("/v1/leads", json=body, headers={**org.auth, **headers})
