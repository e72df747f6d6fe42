"""Caches of API keys and number routings in one intake process follow changes made by
another process (the CLI) within a second: a revoked key gets 401 and a removed number 404.

The intake runs as its own process. That it really answers from its cache is shown first: a
change written with triggers disabled (so no notification goes out) goes unnoticed by it.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest

from leadline.ports import free_port
from leadline.settings import Settings
from tests.helpers import wait_for
from tests.support.messaging import add_business_number, run_leadline
from tests.support.processes import LEADLINE, child_env
from tests.support.services import MakeOrg, Org, psycopg_url
from tests.support.signing import twilio_form

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.e2e
INVALIDATION_DEADLINE_SECONDS = 1.0
LEAD = {"name": "Ada", "phone": "+14155550123", "consent": {"sms": True, "text": "ok"}}


@pytest.fixture(scope="module")
def intake_process(settings: Settings, context: TaskContext) -> Iterator[str]:
    """`leadline intake` in its own process on the test database and Redis namespace (one
    for the module: each test uses an org of its own)."""
    port = free_port()
    env = child_env(settings, LEADLINE_STATE_DIR=tempfile.mkdtemp())
    process = subprocess.Popen(
        [LEADLINE, "intake", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(base + "/healthz"), timeout=60)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def post_lead(base: str, org: Org) -> int:
    return httpx.post(f"{base}/v1/leads", json=LEAD, headers=org.auth, timeout=10).status_code


def post_sms(base: str, to: str) -> int:
    params = [("MessageSid", "SM" + uuid.uuid4().hex), ("From", "+14155550199"), ("To", to)]
    body, headers = twilio_form([*params, ("Body", "hello")], "/hooks/twilio/sms")
    return httpx.post(
        f"{base}/hooks/twilio/sms", content=body, headers=headers, timeout=10
    ).status_code


def silently(settings: Settings, statement: str, *params: Any) -> None:
    """A change with triggers off: nobody is told, so only a cache would miss it."""
    with psycopg.connect(psycopg_url(str(settings.leadline_database_url))) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(statement, params)


def key_prefix(org: Org) -> str:
    return "_".join(org.api_key.split("_")[:2])


def test_a_key_revoked_by_another_process_is_refused_within_a_second(
    intake_process: str, make_org: MakeOrg, settings: Settings
) -> None:
    org = make_org()
    assert post_lead(intake_process, org) == 202
    assert post_lead(intake_process, org) == 202

    revoke = "UPDATE api_keys SET revoked_at = {} WHERE prefix = %s"
    silently(settings, revoke.format("now()"), key_prefix(org))
    assert post_lead(intake_process, org) == 202  # served from the intake's cache
    silently(settings, revoke.format("NULL"), key_prefix(org))

    result = run_leadline(settings, "apikey", "revoke", key_prefix(org))
    assert result.returncode == 0, result.stderr
    time.sleep(INVALIDATION_DEADLINE_SECONDS)
    assert post_lead(intake_process, org) == 401


def test_a_number_removed_by_another_process_stops_routing_within_a_second(
    intake_process: str, make_org: MakeOrg, context: TaskContext, settings: Settings
) -> None:
    org = make_org()
    number = add_business_number(context, org.id)
    assert post_sms(intake_process, number) == 200
    assert post_sms(intake_process, number) == 200

    silently(settings, "DELETE FROM org_phone_numbers WHERE number = %s", number)
    assert post_sms(intake_process, number) == 200  # served from the intake's cache
    silently(
        settings,
        "INSERT INTO org_phone_numbers (id, org_id, number) VALUES (%s, %s, %s)",
        uuid.uuid4(),
        org.id,
        number,
    )

    result = run_leadline(settings, "number", "remove", str(org.id), number)
    assert result.returncode == 0, result.stderr
    time.sleep(INVALIDATION_DEADLINE_SECONDS)
    assert post_sms(intake_process, number) == 404
