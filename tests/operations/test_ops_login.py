"""Ops login: wrong tokens are throttled per address, logout revokes the session server side,
and in production /metrics needs the ops token."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from intake.ops_auth import SESSION_COOKIE
from tests.support.services import RUN_ID

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration

TOKEN = "Zq8v-3LmR0tXw9Yb_c2NfK7pHs1dGj4eUa6iVo5rTy0"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def ops_client(context: TaskContext) -> Callable[..., TestClient]:
    from intake.app import create_app

    def build(peer: str = "127.0.0.2", **overrides: Any) -> TestClient:
        settings = context.settings.model_copy(
            update={
                "leadline_redis_namespace": f"leadline-test-{RUN_ID}-ops-{uuid.uuid4().hex[:8]}",
                "leadline_ops_token": SecretStr(TOKEN),
                "leadline_limit_auth_failures": "5/minute",
                **overrides,
            }
        )
        app = create_app(replace(context, settings=settings))
        # https: the session cookies are Secure (and __Host-), so only sent over TLS.
        return TestClient(
            app, base_url="https://testserver", raise_server_exceptions=False, client=(peer, 1)
        )

    return build


def login(client: TestClient, token: str) -> Any:
    page = client.get("/ops")
    match = CSRF.search(page.text)
    assert match is not None
    return client.post(
        "/ops/login", data={"token": token, "csrf": match.group(1)}, follow_redirects=False
    )


def test_ops_login_is_throttled_after_five_wrong_tokens(
    ops_client: Callable[..., TestClient],
) -> None:
    client = ops_client()
    assert [login(client, "wrong-token").status_code for _ in range(5)] == [401] * 5
    throttled = login(client, "wrong-token")
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
    wrong_bearer = client.get("/ops", headers={"Authorization": "Bearer wrong"})
    assert wrong_bearer.status_code == 429
    # The right token is still let in: others' failures never lock the operator out.
    assert login(client, TOKEN).status_code == 303
    # Another address has its own count.
    assert login(ops_client(peer="127.0.0.3"), "wrong-token").status_code == 401


def test_a_session_cookie_copied_before_logout_is_refused_after_it(
    ops_client: Callable[..., TestClient],
) -> None:
    client = ops_client()
    assert login(client, TOKEN).status_code == 303
    cookie = client.cookies[SESSION_COOKIE]
    page = client.get("/ops")
    assert page.status_code == 200 and "Dead letters" in page.text
    csrf = CSRF.search(page.text)
    assert csrf is not None

    logout = client.post("/ops/logout", data={"csrf": csrf.group(1)}, follow_redirects=False)
    assert logout.status_code == 303

    copied = ops_client()
    copied.cookies.set(SESSION_COOKIE, cookie, domain="testserver")
    replayed = copied.get("/ops")
    assert replayed.status_code == 401 and "Dead letters" not in replayed.text
    forged_post = copied.post("/ops/logout", data={"csrf": csrf.group(1)}, follow_redirects=False)
    assert forged_post.status_code == 401


def test_metrics_need_the_ops_token_in_production(ops_client: Callable[..., TestClient]) -> None:
    client = ops_client(leadline_env="production")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    scrape = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert scrape.status_code == 200 and "leadline_" in scrape.text
    assert ops_client().get("/metrics").status_code == 200  # open outside production
