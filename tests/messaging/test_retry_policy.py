"""Retry delays grow exponentially with jitter, are capped, and obey the provider's wait."""

from __future__ import annotations

import pytest

from leadline.settings import Settings
from tasks.providers import ProviderResult, twilio_error_result
from tasks.sending import retry_delay

pytestmark = pytest.mark.unit

SETTINGS = Settings(leadline_sms_retry_base_seconds=2.0, leadline_sms_retry_max_seconds=60.0)


def test_backoff_doubles_within_jitter_bounds() -> None:
    for attempt, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0)]:
        delays = [retry_delay(SETTINGS, attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered, so retries do not stampede


def test_backoff_is_capped_and_retry_after_wins() -> None:
    assert retry_delay(SETTINGS, 30) <= 60.0
    assert retry_delay(SETTINGS, 5, retry_after=7) == 7


def test_twilio_answers_map_to_the_policy() -> None:
    assert twilio_error_result(400, 21610) == ProviderResult("blocked", code="21610")
    assert twilio_error_result(429, 20429).kind == "retry"
    assert twilio_error_result(429, None).kind == "retry"
    assert twilio_error_result(503, 20503).kind == "retry"
    assert twilio_error_result(500, None).kind == "retry"


@pytest.mark.parametrize("code", [21211, 21614, 21606, 21617, 21408, 30003, None])
def test_every_other_twilio_refusal_is_a_failure_never_retried(code: int | None) -> None:
    """Invalid, landline, unreachable, unpermitted region: retrying cannot help, and the
    message must not be sent twice, so only the codes above are retried."""
    assert twilio_error_result(400, code) == ProviderResult("failed", code=str(code or 400))
