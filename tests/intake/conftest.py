"""Fixtures for the intake tests: orgs that own numbers, Stripe customers and Meta accounts."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from models.routing import add_meta_account
from tests.support.intake import add_random_number
from tests.support.services import MakeOrg, Org

if TYPE_CHECKING:
    from tasks.context import TaskContext


@pytest.fixture
def add_number(context: TaskContext) -> Callable[[uuid.UUID], str]:
    def add(org_id: uuid.UUID) -> str:
        with context.db.tenant(org_id) as session:
            return add_random_number(session, org_id)

    return add


@pytest.fixture
def org_number(make_org: MakeOrg, add_number: Callable[[uuid.UUID], str]) -> tuple[Org, str]:
    """A new organisation and a Twilio number it owns."""
    org = make_org()
    return org, add_number(org.id)


@pytest.fixture
def link_meta(context: TaskContext) -> Callable[[uuid.UUID], str]:
    def link(org_id: uuid.UUID) -> str:
        account_id = str(random.randint(10**14, 10**15))
        with context.db.tenant(org_id) as session:
            add_meta_account(session, org_id, account_id, actor="test")
        return account_id

    return link
