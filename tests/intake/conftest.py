"""Fixtures for the intake tests: orgs that own numbers, Stripe customers and Meta accounts."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from models.routing import add_meta_account
from tests.support.intake import add_random_number

if TYPE_CHECKING:
    from tasks.context import TaskContext


@pytest.fixture
def add_number(context: TaskContext) -> Callable[[uuid.UUID], str]:
    def add(org_id: uuid.UUID) -> str:
        with context.db.tenant(org_id) as session:
            return add_random_number(session, org_id)

    return add


@pytest.fixture
def link_meta(context: TaskContext) -> Callable[[uuid.UUID], str]:
    def link(org_id: uuid.UUID) -> str:
        account_id = str(random.randint(10**14, 10**15))
        with context.db.tenant(org_id) as session:
            add_meta_account(session, org_id, account_id, actor="test")
        return account_id

    return link


@pytest.fixture
def app_with(context: TaskContext) -> Iterator[Callable[..., TestClient]]:
    """A TestClient over an app whose settings differ (limits, providers); closed after."""
    from intake.app import create_app

    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        settings = context.settings.model_copy(update=overrides)
        client = TestClient(
            create_app(replace(context, settings=settings)), raise_server_exceptions=False
        )
        clients.append(client.__enter__())
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)
