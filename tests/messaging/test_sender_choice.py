"""Which Messaging Service an SMS goes through, and the setting's format."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from leadline.settings import Settings
from tasks.providers import messaging_service

pytestmark = pytest.mark.unit

GLOBAL, OWN = "MG" + "1" * 32, "MG" + "f" * 32


def test_the_numbers_own_service_wins_over_the_global_one() -> None:
    configured = Settings(leadline_env="test", twilio_messaging_service_sid=GLOBAL)
    assert messaging_service(configured, OWN) == OWN
    assert messaging_service(configured, None) == GLOBAL
    unset = Settings(leadline_env="test", twilio_messaging_service_sid=None)
    assert messaging_service(unset, None) is None


@pytest.mark.parametrize("bad", ["MG123", "PN" + "1" * 32, "MG" + "g" * 32, " MG" + "1" * 32])
def test_a_malformed_service_sid_is_refused_at_startup(bad: str) -> None:
    with pytest.raises(ValidationError):
        Settings(leadline_env="test", twilio_messaging_service_sid=bad)
