"""AfterCommit batches: items added for one actor and key leave as one message per key and
BATCH_SIZE items, after the single messages, when flushed."""

from __future__ import annotations

from typing import Any

import pytest

from tasks.after_commit import BATCH_SIZE, AfterCommit

pytestmark = pytest.mark.unit


class Recording:
    actor_name = "recording"

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def send(self, *args: Any) -> None:
        self.sent.append(args)


def test_batched_items_leave_in_chunks_per_key() -> None:
    actor = Recording()
    after_commit = AfterCommit()
    for item in range(BATCH_SIZE + 1):
        after_commit.add_to_batch(actor, "org-a", f"a{item}")  # type: ignore[arg-type]
    after_commit.add_to_batch(actor, "org-b", "b0")  # type: ignore[arg-type]
    after_commit.add(actor, "single")  # type: ignore[arg-type]
    assert after_commit.flush() == 4
    assert actor.sent[0] == ("single",)
    assert actor.sent[1] == ("org-a", [f"a{i}" for i in range(BATCH_SIZE)])
    assert actor.sent[2] == ("org-a", [f"a{BATCH_SIZE}"])
    assert actor.sent[3] == ("org-b", ["b0"])
    assert after_commit.flush() == 0
