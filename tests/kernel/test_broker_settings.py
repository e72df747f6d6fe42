"""LEADLINE_BROKER_URL picks the broker; the liveness window must outlast scheduler polls."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from leadline.settings import Settings

pytestmark = pytest.mark.unit
REDIS = "redis://cache.internal:6379/0"


def test_the_broker_is_the_redis_unless_a_broker_url_is_set() -> None:
    assert Settings(leadline_redis_url=REDIS).broker_url == REDIS
    rabbitmq = "amqp://leadline:secret@mq.internal:5672/leadline"
    assert Settings(leadline_redis_url=REDIS, leadline_broker_url=rabbitmq).broker_url == rabbitmq


@pytest.mark.parametrize("url", ["http://mq.internal/", "rabbitmq://mq.internal/", "mq.internal"])
def test_a_broker_url_of_another_kind_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="LEADLINE_BROKER_URL must start with amqp"):
        Settings(leadline_broker_url=url)


def test_a_liveness_window_shorter_than_two_scheduler_polls_is_refused() -> None:
    with pytest.raises(ValidationError, match="LEADLINE_LIVENESS_STALE_SECONDS must exceed"):
        Settings(leadline_liveness_stale_seconds=10, leadline_scheduler_poll_seconds=5)
    assert Settings(leadline_liveness_stale_seconds=11, leadline_scheduler_poll_seconds=5)
