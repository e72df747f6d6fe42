"""The ops page in a real headless Chromium: sign-in, dead letters, replay by click, CSRF,
headers, and no personal data on the page."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import dramatiq
import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, sync_playwright
from pydantic import SecretStr

from tasks.attention import ATTENTION_LISTS
from tasks.context import TaskContext
from tests.helpers import wait_for
from tests.support.browser import find_chromium, plan_browser
from tests.support.operations import (
    PERSON_EMAIL,
    PERSON_NAME,
    PERSON_PHONE,
    FlakyActor,
    dead_letter_row,
    declare_flaky_actor,
)
from tests.support.services import Org

pytestmark = pytest.mark.e2e

OPS_TOKEN = "ops-token-for-the-browser-test-0123456789"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def flaky(broker: dramatiq.Broker) -> FlakyActor:
    return declare_flaky_actor(broker, "test_ops_page_always_fails")


@pytest.fixture
def fake_attention(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [
        {"message_id": "SM-ops-0001", "state": "unknown", "since": "2025-01-01"}
    ]
    monkeypatch.setitem(ATTENTION_LISTS, "test_unknown_sms", lambda _session: rows)
    return rows


@pytest.fixture
def ops_server(context: TaskContext) -> Iterator[str]:
    """The real intake app (with an operator token) under uvicorn, on a free loopback port."""
    from intake.app import create_app

    settings = context.settings.model_copy(update={"leadline_ops_token": SecretStr(OPS_TOKEN)})
    app = create_app(dataclasses.replace(context, settings=settings))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    plan = plan_browser(os.environ, find_chromium())
    if plan.action == "skip":
        pytest.skip(plan.reason)
    if plan.action == "fail":
        pytest.fail(plan.reason, pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=plan.executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def record_job_run(context: TaskContext, job: str) -> None:
    from datetime import UTC, datetime

    from models.retention import JobRun

    with context.db.maintenance() as session:
        session.add(JobRun(job=job, scheduled_for=datetime.now(UTC), status="done"))


def test_operator_replays_a_dead_letter_from_the_ops_page(
    ops_server: str,
    browser: Browser,
    context: TaskContext,
    make_org: Callable[[], Org],
    flaky: FlakyActor,
    fake_attention: list[dict[str, Any]],
    worker: dramatiq.Worker,
) -> None:
    org = make_org()
    lead = {"name": PERSON_NAME, "phone": PERSON_PHONE, "email": PERSON_EMAIL}
    posted = httpx.post(f"{ops_server}/v1/leads", json=lead, headers=org.auth, timeout=10)
    assert posted.status_code == 202
    flaky.broken.set()
    flaky.runs.clear()
    message_id = flaky.actor.send(posted.json()["id"]).message_id
    row = wait_for(lambda: dead_letter_row(context, message_id))
    record_job_run(context, "ops_page_test_job")

    page = browser.new_page()
    response = page.goto(f"{ops_server}/ops")
    assert response is not None and response.status == 401
    page.fill("input[name=token]", "wrong-token")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "That token is not valid."
    page.fill("input[name=token]", OPS_TOKEN)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url == f"{ops_server}/ops"

    cookie = next(c for c in page.context.cookies() if c["name"] == "__Host-leadline_ops")
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    entry = page.locator(f"tr[data-message-id='{message_id}']")
    assert "ProviderOutage" in entry.inner_text()
    assert page.locator("#attention-test_unknown_sms").is_visible()
    assert "SM-ops-0001" in page.content()
    assert page.locator(f"#queues tr[data-queue='{flaky.queue}']").is_visible()
    assert "ops_page_test_job" in page.content()  # last runs of scheduled jobs
    html = page.content()
    for value in (PERSON_PHONE, PERSON_EMAIL, "4155550123", "Lovelace", "Ada"):
        assert value not in html
    assert "<script" not in html.lower()

    headers = page.request.get(f"{ops_server}/ops").headers
    assert headers["content-security-policy"].startswith("default-src 'none'")
    assert "script-src" not in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"

    purge_url = f"{ops_server}/ops/dead-letters/{row.id}/purge"
    assert page.request.post(purge_url, form={}).status == 403
    assert page.request.post(purge_url, form={"csrf": "forged"}).status == 403
    assert dead_letter_row(context, message_id).state == "dead"

    flaky.broken.clear()  # the cause is fixed; the operator clicks Replay
    with page.expect_navigation():
        entry.locator("button[name=replay]").click()
    assert page.locator("[role=status]").inner_text().startswith("Replayed")
    wait_for(lambda: flaky.runs == [message_id])
    assert dead_letter_row(context, message_id).state == "replayed"
    assert page.locator(f"tr[data-message-id='{message_id}']").count() == 0
    page.close()


def test_ops_page_refuses_requests_without_the_token(ops_server: str, browser: Browser) -> None:
    page = browser.new_page()
    response = page.goto(f"{ops_server}/ops")
    assert response is not None and response.status == 401
    assert "Dead letters" not in page.content()
    page.close()
    assert (
        httpx.get(f"{ops_server}/ops", headers={"Authorization": "Bearer nope"}).status_code == 401
    )
    bearer = {"Authorization": f"Bearer {OPS_TOKEN}"}
    assert httpx.get(f"{ops_server}/ops", headers=bearer).status_code == 200
    forged = httpx.post(f"{ops_server}/ops/logout", headers=bearer, data={"csrf": "x"})
    assert forged.status_code == 403
    login = httpx.post(f"{ops_server}/ops/login", data={"token": OPS_TOKEN})
    assert login.status_code == 403 and "set-cookie" not in login.headers
