"""What every test shares about the services it runs against: the run's id, test secrets,
limits generous enough for one shared client address, and the organisations tests make."""

from __future__ import annotations

import base64
import os
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.engine import make_url

RUN_ID = uuid.uuid4().hex[:10]
TEST_PROVIDER_SECRETS: dict[str, Any] = {
    "twilio_auth_token": "test-twilio-auth-token",
    "stripe_webhook_secret": "whsec_test_stripe_secret",
    "telegram_secret_token": "test-telegram-secret-token",
    "meta_app_secret": "test-meta-app-secret",
    "meta_verify_token": "test-meta-verify-token",
    "postmark_webhook_user": "test-postmark-hooks",
    "postmark_webhook_password": "test-postmark-webhook-password",
}

# Tests share one client IP and one Redis namespace; rate-limit tests set their own limits.
# Campaign launches keep the real 3/minute: that limit is per org and every test makes its own.
GENEROUS_LIMITS: dict[str, Any] = {
    "leadline_limit_auth_failures": "100000/minute",
    "leadline_limit_api": "100000/minute",
    "leadline_limit_api_reads": "100000/minute",
    "leadline_limit_webhooks": "100000/minute",
}


def random_master_key(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


def psycopg_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(frozen=True)
class Org:
    id: uuid.UUID
    api_key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


class MakeOrg(Protocol):
    """The `make_org` fixture: a new organisation with an owner API key."""

    def __call__(self, name: str = "Test Org") -> Org: ...
