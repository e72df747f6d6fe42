"""Connecting a tenant's social channels through the sandbox's Meta login dialog, and the
webhook bodies Meta posts when a person writes on one of them."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import httpx
from starlette.testclient import TestClient

from leadline.jsondata import JsonObject
from tests.api.tenants import Tenant
from tests.support.signing import meta_headers

CALLBACK = "/oauth/meta/callback"


def authorize(client: TestClient, tenant: Tenant, role: str = "admin") -> JsonObject:
    response = client.get("/v1/connections/meta/authorize", headers=tenant.auth(role))
    assert response.status_code == 200, response.text
    body: JsonObject = response.json()
    return body


def consent(url: str) -> tuple[str, str]:
    """What the browser does at Meta: open the dialog, follow it back. Returns (code, state)."""
    answer = httpx.get(url, follow_redirects=False, trust_env=False)
    assert answer.status_code == 302, answer.text
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    return query["code"][0], query["state"][0]


def connect(client: TestClient, tenant: Tenant) -> dict[str, str]:
    """The whole flow; returns {kind: connection id}."""
    code, state = consent(authorize(client, tenant)["url"])
    response = client.get(CALLBACK, params={"code": code, "state": state})
    assert response.status_code == 200, response.text
    return {c["kind"]: c["id"] for c in response.json()["connected"]}


def post_meta(client: TestClient, body: JsonObject) -> None:
    raw = json.dumps(body).encode()
    assert client.post("/hooks/meta", content=raw, headers=meta_headers(raw)).status_code == 200


def messaging_body(kind: str, account_id: str, sender: str, mid: str, text: str) -> JsonObject:
    """Messenger (`page`) or Instagram (`instagram`): a person wrote to the account."""
    event = {
        "sender": {"id": sender},
        "recipient": {"id": account_id},
        "timestamp": int(time.time() * 1000),
        "message": {"mid": mid, "text": text},
    }
    return {"object": kind, "entry": [{"id": account_id, "time": 1, "messaging": [event]}]}


def whatsapp_message_body(
    waba_id: str, phone_number_id: str, wa_id: str, mid: str, text: str, sent_at: float
) -> JsonObject:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100199", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Zoë"}, "wa_id": wa_id}],
        "messages": [
            {
                "from": wa_id,
                "id": mid,
                "timestamp": str(int(sent_at)),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"field": "messages", "value": value}]}],
    }
