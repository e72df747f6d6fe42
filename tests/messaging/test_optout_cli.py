"""`leadline optout add`: an opt-out the business heard by email, phone, web or in person,
recorded from the command line, blocks the messages already waiting for that number."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from leadline.sandbox import SandboxState
from leadline.settings import Settings
from models.messaging import Suppression
from models.tables import AuditEntry
from tasks.sending import deliver_outbound
from tests.support.messaging import make_leads, queue_alerts, random_phone
from tests.support.messaging import run_leadline as leadline
from tests.support.services import MakeOrg

if TYPE_CHECKING:
    from tasks.context import TaskContext


pytestmark = pytest.mark.e2e


def test_a_reported_opt_out_blocks_a_message_already_queued(
    make_org: MakeOrg, settings: Settings, context: TaskContext, sandbox_state: SandboxState
) -> None:
    org = make_org()
    person = random_phone()
    [lead_id] = make_leads(context, org.id, [person])
    [queued] = queue_alerts(context, org.id, person, 1, enqueue=False)
    [other] = queue_alerts(context, org.id, random_phone(), 1, enqueue=False)

    added = leadline(
        settings, "optout", "add", str(org.id), person, "--channel", "in_person",
        "--note", "asked at the counter", "--json",
    )  # fmt: skip

    assert added.returncode == 0, added.stderr
    data = json.loads(added.stdout)
    assert (data["reason"], data["created"], data["lead_id"]) == (
        "reported_in_person",
        True,
        str(lead_id),
    )
    assert person not in added.stdout
    assert deliver_outbound(context, org.id, queued) == "blocked"
    assert deliver_outbound(context, org.id, other) == "sent"
    assert all(record["to"] != person for record in sandbox_state.sent())

    with context.db.tenant(org.id) as session:
        [suppression] = session.scalars(select(Suppression)).all()
        cipher = context.keys.cipher(session, org.id)
        note = cipher.decrypt_text(suppression.note_ct, "suppressions", "note_ct", suppression.id)
        [entry] = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "optout.added")
        ).all()
    assert note == "asked at the counter"
    assert b"counter" not in (suppression.note_ct or b"")
    assert (entry.actor, entry.details["reason"]) == ("cli", "reported_in_person")
    assert person[-7:] not in f"{entry.target}{entry.details}"


def test_a_second_report_changes_nothing(make_org: MakeOrg, settings: Settings) -> None:
    org = str(make_org().id)
    person = random_phone()
    first = leadline(settings, "optout", "add", org, person, "--channel", "email")
    again = leadline(settings, "optout", "add", org, person, "--channel", "phone")

    assert first.returncode == 0, first.stderr
    assert "opted out" in first.stdout and person not in first.stdout
    assert (again.returncode, again.stdout.strip().endswith("(unchanged)")) == (0, True)


NO_SUCH_ORG = "3b9d2e4f-7a1c-4e8b-b2d6-5c0f9a8e7d61"


@pytest.mark.parametrize(
    ("org", "number", "channel", "message", "code"),
    [
        ("ORG", "+1415", "email", "error: NUMBER is not a valid phone number", 1),
        ("ORG", "not a number", "web", "error: NUMBER is a national number", 1),
        ("not-a-uuid", "+14155550123", "email", "error: ORG must be a UUID", 1),
        (NO_SUCH_ORG, "+14155550123", "email", "error: no organisation", 1),
        ("ORG", "+14155550123", "fax", "error: Invalid value for '--channel'", 2),
    ],
)
def test_bad_input_is_one_line_and_records_nothing(
    make_org: MakeOrg,
    settings: Settings,
    context: TaskContext,
    org: str,
    number: str,
    channel: str,
    message: str,
    code: int,
) -> None:
    real = make_org()
    given = str(real.id) if org == "ORG" else org

    result = leadline(settings, "optout", "add", given, number, "--channel", channel)

    assert result.returncode == code
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    with context.db.tenant(real.id) as session:
        assert session.scalars(select(Suppression)).all() == []
