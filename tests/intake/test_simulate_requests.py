"""What `leadline simulate` sends passes the intake's own checks and reads as the real thing."""

from __future__ import annotations

import json
import time

import pytest

from intake.routes.stripe import HANDLED_TYPES, customer_id
from intake.routes.twilio import external_id
from intake.verify import verify_meta, verify_stripe, verify_telegram, verify_twilio
from leadline import provider_signing
from leadline.commands.simulate import (
    messenger_message,
    stripe_event,
    telegram_update,
    twilio_sms_params,
)
from leadline.errors import VerificationError
from tasks.billing import event_object
from tasks.meta import read_platform_message, split_meta_messages
from tasks.telegram_link import read_command

pytestmark = pytest.mark.unit

URL = "http://127.0.0.1:8300/hooks/twilio/sms"


def test_the_sms_verifies_for_the_url_it_is_sent_to_and_no_other() -> None:
    params = [*twilio_sms_params("SM" + "a" * 32, "AC" + "0" * 32, "+14155550123", "+14155550100")]
    params.append(("Body", "STOP"))
    body, headers = provider_signing.twilio_form("token", URL, params)
    form = verify_twilio("token", URL, body, provider_signing.FORM, headers["X-Twilio-Signature"])
    assert form is not None
    fields = form.first_values()
    assert external_id("twilio_sms", fields) == "SM" + "a" * 32
    assert fields["NumMedia"] == "0" and fields["Body"] == "STOP"
    with pytest.raises(VerificationError):
        verify_twilio(
            "token",
            URL.replace("8300", "8000"),
            body,
            provider_signing.FORM,
            headers["X-Twilio-Signature"],
        )


@pytest.mark.parametrize("kind", sorted(HANDLED_TYPES))
def test_every_handled_stripe_type_routes_by_its_customer(kind: str) -> None:
    event = stripe_event(kind, "cus_123", int(time.time()))
    body = json.dumps(event).encode()
    headers = provider_signing.stripe_headers("whsec_x", body, int(time.time()))
    verify_stripe("whsec_x", body, headers["Stripe-Signature"])
    assert customer_id(event) == "cus_123"
    assert event["id"].startswith("evt_") and event_object(event)
    if kind.endswith("deleted"):
        assert event["data"]["object"]["status"] == "canceled"


def test_the_telegram_update_is_a_bot_command() -> None:
    update = telegram_update(777, "/start abc")
    verify_telegram("s", provider_signing.telegram_headers("s")["X-Telegram-Bot-Api-Secret-Token"])
    command = read_command(update)
    assert command is not None
    assert (command.chat_id, command.command, command.argument) == (777, "/start", "abc")


def test_the_meta_message_is_one_lead_for_the_page() -> None:
    body = messenger_message("1029384756", "5550001", "m_abc", "Need a quote")
    verify_meta(
        "secret", body, provider_signing.meta_headers("secret", body)["X-Hub-Signature-256"]
    )
    [message] = split_meta_messages(json.loads(body))
    assert message.account_ids == ("1029384756",) and message.external_id == "m_abc"
    read = read_platform_message(message.payload)
    assert read is not None and (read.platform, read.text) == ("messenger", "Need a quote")
