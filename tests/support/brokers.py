"""Which brokers the pipeline tests run on, and what happens when RabbitMQ is not there.

Modules marked `both_brokers` run their tests that use the `broker` fixture twice: on Redis,
and on RabbitMQ at LEADLINE_TEST_AMQP_URL (tests/conftest.py). One place decides about the
RabbitMQ half, as tests/support/browser.py does for the browser: run it; skip it, with the
setting that enables it, when the URL is not set; or fail, under CI=true when it is not set,
and whenever a URL that was set cannot be reached (the run asked for RabbitMQ and would
otherwise pass without it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tests.support.browser import on_ci

AMQP_URL_VARIABLE = "LEADLINE_TEST_AMQP_URL"
ENABLE_AMQP = f"export {AMQP_URL_VARIABLE}=amqp://guest:guest@127.0.0.1:5672/%2F"
BROKERS = ("redis", "rabbitmq")
UNREACHABLE_URLS = {
    "redis": "redis://127.0.0.1:9/0",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:9/%2F",
}


@dataclass(frozen=True)
class AmqpPlan:
    action: Literal["run", "skip", "fail"]
    url: str | None = None
    reason: str = ""


def plan_amqp(env: Mapping[str, str], problem_of: Callable[[str], str | None]) -> AmqpPlan:
    """`problem_of(url)`: None when RabbitMQ answers there, else what went wrong."""
    url = env.get(AMQP_URL_VARIABLE, "").strip()
    if not url:
        if on_ci(env):
            return AmqpPlan(
                "fail",
                reason=f"CI=true but {AMQP_URL_VARIABLE} is not set; the RabbitMQ variants "
                f"must run on CI (.ci/run sets it; or run: {ENABLE_AMQP})",
            )
        return AmqpPlan(
            "skip", reason=f"{AMQP_URL_VARIABLE} is not set (enable with: {ENABLE_AMQP})"
        )
    problem = problem_of(url)
    if problem is not None:
        return AmqpPlan("fail", reason=f"RabbitMQ at {AMQP_URL_VARIABLE} unreachable: {problem}")
    return AmqpPlan("run", url=url)


def dead_copies(broker: Any, queue: str) -> list[bytes]:
    """The bodies of Dramatiq's own dead copies in `<queue>.XQ`, left where they are."""
    from dramatiq.common import xq_name

    from workers.brokers import RabbitmqLeadlineBroker

    if not isinstance(broker, RabbitmqLeadlineBroker):
        bodies: list[bytes] = broker.client.hvals(f"{broker.namespace}:{xq_name(queue)}.msgs")
        return bodies
    # Read without acknowledging: closing the channel puts every message back in its place.
    with broker.probe_channel() as channel:
        copies = []
        while True:
            method, _properties, body = channel.basic_get(broker.amqp_name(xq_name(queue)))
            if method is None:
                return copies
            copies.append(body)
