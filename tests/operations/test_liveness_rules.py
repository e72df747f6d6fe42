"""When a loop counts as stuck, and when the RabbitMQ half of the pipeline tests runs."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from tests.support.brokers import AMQP_URL_VARIABLE, ENABLE_AMQP, plan_amqp
from workers.heartbeat import ConsumerHeartbeat, LoopHeartbeat

pytestmark = pytest.mark.unit
URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def boot(heartbeat: ConsumerHeartbeat, queue: str) -> threading.Thread:
    """A consumer thread that registers, beats once, and waits to be told to shut down."""
    done = threading.Event()

    def consumer() -> None:
        thread: Any = SimpleNamespace(queue_name=queue)
        heartbeat.after_consumer_thread_boot(None, thread)  # type: ignore[arg-type]
        heartbeat.beat()
        done.wait()
        heartbeat.before_consumer_thread_shutdown(None, thread)  # type: ignore[arg-type]

    worker = threading.Thread(target=consumer)
    worker.done = done  # type: ignore[attr-defined]
    worker.start()
    return worker


def test_each_consumer_loop_is_judged_by_its_own_last_poll() -> None:
    clock = Clock()
    heartbeat = ConsumerHeartbeat(clock)
    assert heartbeat.liveness(10).as_dict() == {"status": "stale", "consumers": 0, "stale": []}
    events = boot(heartbeat, "events")
    clock.now += 8
    delayed = boot(heartbeat, "events.DQ")
    assert heartbeat.liveness(10).alive
    clock.now += 3  # `events` polled 11 s ago, `events.DQ` 3 s ago
    assert heartbeat.liveness(10).as_dict() == {
        "status": "stale",
        "consumers": 2,
        "stale": ["events"],
    }
    events.done.set()  # type: ignore[attr-defined]
    events.join()
    assert heartbeat.liveness(10).alive  # a consumer that shut down is no longer judged
    delayed.done.set()  # type: ignore[attr-defined]
    delayed.join()
    assert not heartbeat.liveness(10).alive


def test_a_beat_from_a_thread_that_is_no_consumer_counts_for_nothing() -> None:
    heartbeat = ConsumerHeartbeat(Clock())
    heartbeat.beat()
    assert heartbeat.liveness(10).detail == {"consumers": 0, "stale": []}


def test_a_loop_is_stale_before_its_first_turn_and_after_it_stops_turning() -> None:
    clock = Clock()
    loop = LoopHeartbeat(clock)
    assert loop.liveness(30).as_dict() == {"status": "stale", "last_turn_seconds_ago": None}
    loop.beat()
    clock.now += 30
    assert loop.liveness(30).as_dict() == {"status": "ok", "last_turn_seconds_ago": 30.0}
    clock.now += 0.5
    assert not loop.liveness(30).alive


def never_asked(url: str) -> str | None:
    raise AssertionError("no URL, nothing to reach")


def test_without_the_url_rabbitmq_runs_are_skipped_saying_how_to_enable_them() -> None:
    plan = plan_amqp({}, never_asked)
    assert plan.action == "skip"
    assert AMQP_URL_VARIABLE in plan.reason and ENABLE_AMQP in plan.reason


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_on_ci_a_missing_url_fails(ci: str) -> None:
    plan = plan_amqp({"CI": ci}, never_asked)
    assert plan.action == "fail" and ".ci/run" in plan.reason


@pytest.mark.parametrize("env", [{}, {"CI": "true"}])
def test_a_url_that_cannot_be_reached_fails_on_ci_and_off_it(env: dict[str, str]) -> None:
    plan = plan_amqp({**env, AMQP_URL_VARIABLE: URL}, lambda url: "AMQPConnectionError")
    assert (plan.action, plan.url) == ("fail", None)
    assert "AMQPConnectionError" in plan.reason


def test_a_reachable_url_runs() -> None:
    assert plan_amqp({AMQP_URL_VARIABLE: URL, "CI": "true"}, lambda url: None).url == URL
