"""Telegram webhook: secret token, one event per update, /start links and /stop unlinks."""

from __future__ import annotations

import json
import random
import uuid
from typing import TYPE_CHECKING, Any

import dramatiq
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from models.channels import TelegramChat
from models.telegram_links import CHAT_TABLE, create_link_code
from tests.helpers import wait_for
from tests.support.intake import all_event_count, events_of, events_settled
from tests.support.services import MakeOrg
from tests.support.signing import TELEGRAM_SECRET, telegram_headers, telegram_update

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration


def post(client: TestClient, org_id: Any, update: dict[str, Any], **headers: str) -> Any:
    body = json.dumps(update).encode()
    return client.post(
        f"/hooks/telegram/{org_id}", content=body, headers={**telegram_headers(), **headers}
    )


def chats_of(context: TaskContext, org_id: uuid.UUID) -> list[tuple[str, str]]:
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        return [
            (cipher.decrypt(c.chat_id_ct, CHAT_TABLE, "chat_id_ct", c.id).decode(), c.status)
            for c in session.scalars(select(TelegramChat))
        ]


def link_code(context: TaskContext, org_id: uuid.UUID) -> str:
    with context.db.tenant(org_id) as session:
        return create_link_code(session, org_id, context.clock())


def test_start_with_link_code_links_and_stop_unlinks(
    client: TestClient, worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    chat_id = random.randint(10**8, 10**9)
    code = link_code(context, org.id)

    assert post(client, org.id, telegram_update(1, chat_id, f"/start {code}")).status_code == 200
    wait_for(lambda: events_settled(context, org.id, 1))
    assert chats_of(context, org.id) == [(str(chat_id), "linked")]
    with context.db.tenant(org.id) as session:
        row = session.scalars(select(TelegramChat)).one()
    assert str(chat_id).encode() not in row.chat_id_ct + row.chat_bidx

    assert post(client, org.id, telegram_update(2, chat_id, "/stop")).status_code == 200
    wait_for(lambda: events_settled(context, org.id, 2))
    assert chats_of(context, org.id) == [(str(chat_id), "unlinked")]


def test_start_without_a_valid_code_waits_for_approval(
    client: TestClient, worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    code = link_code(context, org.id)
    first, second = random.randint(10**8, 10**9), random.randint(10**8, 10**9)
    post(client, org.id, telegram_update(1, first, "/start"))
    post(client, org.id, telegram_update(2, first, f"/start {code}x"))
    post(client, org.id, telegram_update(3, second, f"/start@LeadlineBot {code}"))
    wait_for(lambda: events_settled(context, org.id, 3))
    post(client, org.id, telegram_update(4, first, f"/start {code}"))  # already used
    wait_for(lambda: events_settled(context, org.id, 4))
    assert sorted(chats_of(context, org.id)) == sorted(
        [(str(first), "pending"), (str(second), "linked")]
    )


def test_same_update_twice_is_one_event(
    client: TestClient, worker: dramatiq.Worker, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    update = telegram_update(77, random.randint(10**8, 10**9), "/start")
    assert post(client, org.id, update).status_code == 200
    assert post(client, org.id, update).status_code == 200
    wait_for(lambda: events_settled(context, org.id, 1))
    assert [e.external_id for e in events_of(context, org.id)] == ["77"]
    assert len(chats_of(context, org.id)) == 1


def test_wrong_or_missing_secret_is_403_and_stores_nothing(
    client: TestClient, make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    update = telegram_update(5, 12345, "/start")
    body = json.dumps(update).encode()
    path = f"/hooks/telegram/{org.id}"
    for headers in (
        {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET + "x"},
        {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET[:-1]},
        {},
    ):
        response = client.post(
            path, content=body, headers={"Content-Type": "application/json", **headers}
        )
        assert response.status_code == 403
    assert events_of(context, org.id) == []


def test_unknown_org_is_acknowledged_and_dropped(client: TestClient, context: TaskContext) -> None:
    before = all_event_count(context)
    for org in (uuid.uuid4(), "not-a-uuid"):
        assert post(client, org, telegram_update(9, 12345, "/start")).status_code == 200
    assert all_event_count(context) == before
