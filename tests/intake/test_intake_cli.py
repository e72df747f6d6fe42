"""The intake's CLI commands, run as an operator runs them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from click.testing import Result
from sqlalchemy import select

from models.billing import OrgBilling
from models.routing import list_phone_numbers, signing_secrets
from models.telegram_links import list_chats
from tests.support.services import MakeOrg

if TYPE_CHECKING:
    from tasks.context import TaskContext

pytestmark = pytest.mark.integration


def test_routing_and_secret_commands(
    leadline_in_process: Callable[..., Result], make_org: MakeOrg, context: TaskContext
) -> None:
    org = make_org()
    national = leadline_in_process("number", "add", str(org.id), "(212) 555-0147", "--json")
    assert national.exit_code == 1  # no default region: +E.164 only
    assert (
        leadline_in_process("org", "settings", str(org.id), "--default-region", "US").exit_code == 0
    )
    added = leadline_in_process("number", "add", str(org.id), "(212) 555-0147", "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout.strip().splitlines()[-1])["number"] == "+12125550147"
    again = leadline_in_process("number", "add", str(make_org().id), "+12125550147", "--json")
    assert again.exit_code == 1 and "already belongs" in again.output

    linked = leadline_in_process("org", "link-stripe", str(org.id), "cus_cli123", "--json")
    secret = leadline_in_process("apikey", "signing-secret", str(org.id), "--json")
    chat = leadline_in_process("telegram", "link", str(org.id), "987654321", "--json")
    assert linked.exit_code == secret.exit_code == chat.exit_code == 0, secret.output
    shown = json.loads(secret.stdout.strip().splitlines()[-1])["secret"]

    with context.db.tenant(org.id) as session:
        cipher = context.keys.cipher(session, org.id)
        assert list_phone_numbers(session) == ["+12125550147"]
        assert session.scalars(select(OrgBilling.stripe_customer_id)).one() == "cus_cli123"
        assert signing_secrets(session, cipher, context.clock()) == [shown]
        assert [c.status for c in list_chats(session)] == ["linked"]
