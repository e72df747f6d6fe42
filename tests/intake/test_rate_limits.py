"""Rate limits trip at the configured count, answer 429 with Retry-After, and recover."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from intake.limits import RateLimiter, RateLimitExceeded
from leadline.settings import Settings
from tests.helpers import wait_for
from tests.support.services import RUN_ID, MakeOrg
from tests.support.signing import telegram_headers, telegram_update

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration

TIGHT = "3 per 1 second"


def namespace() -> str:
    """A fresh namespace per test (still under the run's prefix, so it is cleaned up)."""
    return f"leadline-test-{RUN_ID}-rl-{uuid.uuid4().hex[:8]}"


def telegram(client: TestClient, org_id: Any, update_id: int, **headers: str) -> Any:
    body = json.dumps(telegram_update(update_id, 4242, "/stop")).encode()
    return client.post(
        f"/hooks/telegram/{org_id}", content=body, headers={**telegram_headers(), **headers}
    )


def test_auth_failures_lock_out_the_ip_then_recover(
    app_with: Callable[..., TestClient], make_org: MakeOrg
) -> None:
    client = app_with(leadline_redis_namespace=namespace(), leadline_limit_auth_failures=TIGHT)
    org = make_org()
    bad = {"X-Telegram-Bot-Api-Secret-Token": "bad"}
    assert [telegram(client, org.id, n, **bad).status_code for n in range(3)] == [403] * 3
    locked = telegram(client, org.id, 3, **bad)
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= 2
    assert locked.json() == {"error": "too many requests"}
    assert telegram(client, org.id, 10).status_code == 200  # a valid request is never held
    assert wait_for(
        lambda: telegram(client, org.id, 11, **bad).status_code == 403, timeout=5, interval=0.2
    )


def test_api_limit_is_per_key(app_with: Callable[..., TestClient], make_org: MakeOrg) -> None:
    client = app_with(leadline_redis_namespace=namespace(), leadline_limit_api=TIGHT)
    busy, quiet = make_org(), make_org()

    def post(org: Any) -> int:
        return int(
            client.post("/v1/leads", json={"email": "a@example.com"}, headers=org.auth).status_code
        )

    assert [post(busy) for _ in range(3)] == [202, 202, 202]
    assert post(busy) == 429
    assert post(quiet) == 202
    assert wait_for(lambda: post(busy) == 202, timeout=5, interval=0.2)


def test_webhook_limit_is_per_org_and_route(
    app_with: Callable[..., TestClient], make_org: MakeOrg
) -> None:
    client = app_with(leadline_redis_namespace=namespace(), leadline_limit_webhooks=TIGHT)
    busy, quiet = make_org(), make_org()
    assert [telegram(client, busy.id, n).status_code for n in range(3)] == [200, 200, 200]
    assert telegram(client, busy.id, 3).status_code == 429
    assert telegram(client, quiet.id, 3).status_code == 200
    assert wait_for(
        lambda: telegram(client, busy.id, 4).status_code == 200, timeout=5, interval=0.2
    )


def test_campaign_limit_helper_and_defaults(settings: Settings) -> None:
    limiter = RateLimiter.from_settings(
        settings.model_copy(
            update={"leadline_redis_namespace": namespace(), "leadline_limit_campaigns": "3/minute"}
        )
    )
    org = str(uuid.uuid4())
    for _ in range(3):
        limiter.hit("campaigns", org)
    with pytest.raises(RateLimitExceeded) as info:
        limiter.hit("campaigns", org)
    assert 1 <= info.value.retry_after <= 60
    limiter.hit("campaigns", str(uuid.uuid4()))  # another org is not affected


def test_unreachable_redis_lets_requests_through_and_says_so(
    context: TaskContext, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    from limits import parse

    limiter = RateLimiter("redis://127.0.0.1:9/0", "unreachable", {"api": parse("1/minute")})
    allowed = 0
    for _ in range(3):  # three times a limit of one: each would be refused if it were counted
        limiter.hit("api", "k")
        allowed += 1
    assert allowed == 3
    warnings = [line for line in log_lines() if line.get("event") == "rate limiter unavailable"]
    assert [(w["limit"], w["level"]) for w in warnings] == [("api", "warning")] * 3


def test_unix_socket_url_is_translated_for_limits() -> None:
    from intake.limits import limits_storage_uri

    assert limits_storage_uri("unix:///tmp/redis.sock?db=0") == "redis+unix:///tmp/redis.sock?db=0"
    assert limits_storage_uri("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_v1_writes_share_the_key_limit_reads_have_their_own_and_the_lockout_is_shared(
    app_with: Callable[..., TestClient], make_org: MakeOrg
) -> None:
    client = app_with(
        leadline_redis_namespace=namespace(),
        leadline_limit_api=TIGHT,
        leadline_limit_api_reads=TIGHT,
        leadline_limit_auth_failures=TIGHT,
    )
    org = make_org()
    erase = [client.delete(f"/v1/leads/{uuid.uuid4()}", headers=org.auth) for _ in range(3)]
    assert [response.status_code for response in erase] == [404, 404, 404]
    assert (
        client.post("/v1/leads", json={"email": "a@example.com"}, headers=org.auth).status_code
        == 429
    )
    reads = [client.get("/v1/export", headers=org.auth).status_code for _ in range(4)]
    assert reads == [200, 200, 200, 429]
    wrong = {"Authorization": "Bearer ll_00000000_wrong"}
    assert [client.get("/v1/campaigns/x", headers=wrong).status_code for _ in range(3)] == [
        401,
        401,
        401,
    ]
    assert client.get("/v1/export", headers=wrong).status_code == 429
