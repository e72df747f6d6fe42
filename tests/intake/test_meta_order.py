"""Meta send times and body positions: what orders one person's messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tasks.meta import message_order, read_platform_message, sent_at, split_meta_messages

pytestmark = pytest.mark.unit


def messenger(timestamps: list[Any]) -> dict[str, Any]:
    messaging = [
        {"sender": {"id": "42"}, "timestamp": at, "message": {"mid": f"m_{i}", "text": "hi"}}
        for i, at in enumerate(timestamps)
    ]
    return {"object": "page", "entry": [{"id": "7", "messaging": messaging}]}


def test_send_times_are_read_in_milliseconds_or_seconds() -> None:
    assert sent_at(1_700_000_000_123, 1000) == datetime(2023, 11, 14, 22, 13, 20, 123000, UTC)
    assert sent_at("1700000000", 1) == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


NOT_TIMES = [None, True, 0, -5, "", "12a", "١٢", 1.5, "1" * 17, "9" * 40, 10**30]


@pytest.mark.parametrize("value", NOT_TIMES)
def test_what_is_not_a_send_time_gives_none(value: Any) -> None:
    assert sent_at(value, 1) is None


def test_each_message_of_a_body_carries_its_position() -> None:
    messages = split_meta_messages(messenger([5, 5, 4]))
    assert [m.payload["position"] for m in messages] == [0, 1, 2]


def test_position_breaks_ties_but_never_reorders_different_times() -> None:
    orders = []
    for message in split_meta_messages(messenger([5, 5, 4])):
        platform_message = read_platform_message(message.payload)
        assert platform_message is not None
        orders.append(message_order(message.payload, platform_message))
    first, second, third = orders
    assert first is not None and second is not None and third is not None
    assert first < second  # same millisecond: the body's order
    assert third < first  # sent a millisecond earlier, though later in the body


def test_no_send_time_gives_no_order() -> None:
    [message] = split_meta_messages(messenger([None]))
    platform_message = read_platform_message(message.payload)
    assert platform_message is not None
    assert message_order(message.payload, platform_message) is None
