"""The chaos run's plan sent to two intakes, the way a load balancer in front of them would.

Each client lane prefers one host (even lanes a, odd lanes b), so a phone's requests still
go out one at a time and in plan order. A request that cannot connect to its host (nothing
listens there any more) goes to the other one, signed for that host's public URL; one that
connected and then got no answer is not retried elsewhere, since it may have been accepted.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx

from tests.chaos.load import REQUEST_TIMEOUT_SECONDS, Answer, Target, event_id_of, request_for
from tests.chaos.plan import Step


@dataclass(frozen=True)
class Sent:
    answer: Answer
    host: str | None  # the host that answered; None: no host did
    failed_over: bool  # the preferred host refused the connection


def send(client: httpx.Client, step: Step, route: Sequence[tuple[str, Target]]) -> Sent:
    started = time.time()
    for position, (host, target) in enumerate(route):
        path, body, headers = request_for(step, target, int(time.time()))
        started = time.time()
        try:
            response = client.post(target.intake_url + path, content=body, headers=headers)
        except httpx.ConnectError:
            continue  # nothing reached this host
        except httpx.HTTPError:
            return Sent(Answer(step, started, time.time(), None), host, position > 0)
        answer = Answer(step, started, time.time(), response.status_code, event_id_of(response))
        return Sent(answer, host, position > 0)
    return Sent(Answer(step, started, time.time(), None), None, True)


@dataclass
class ClusterLoad:
    """Step i is sent no earlier than i/`rate` seconds after the start, none after
    `deadline` seconds."""

    plan: Sequence[Step]
    targets: dict[str, Target]  # host name → its intake
    rate: float
    deadline: float
    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def route(self, lane: int) -> list[tuple[str, Target]]:
        hosts = sorted(self.targets)
        first = hosts[lane % len(hosts)]
        return [(first, self.targets[first])] + [
            (host, self.targets[host]) for host in hosts if host != first
        ]

    def run(self, stop: threading.Event, progress: Callable[[float], None]) -> list[Sent]:
        start = time.time()
        lanes: dict[int, list[Step]] = {}
        for step in self.plan:
            lanes.setdefault(step.lane, []).append(step)
        threads = [
            threading.Thread(target=self.lane, args=(lane, steps, start, stop), daemon=True)
            for lane, steps in lanes.items()
        ]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            time.sleep(1.0)
            progress(time.time() - start)
        return sorted(self.sent, key=lambda sent: sent.answer.step.index)

    def lane(self, lane: int, steps: list[Step], start: float, stop: threading.Event) -> None:
        route = self.route(lane)
        # trust_env off: no proxy from the shell's environment sees this traffic.
        with httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS, trust_env=False) as client:
            for step in steps:
                wait = start + step.index / self.rate - time.time()
                if stop.wait(max(wait, 0.0)) or time.time() > start + self.deadline:
                    return
                sent = send(client, step, route)
                with self.lock:
                    self.sent.append(sent)

    def accepted(self, until: float | None = None, since: float | None = None) -> Counter[str]:
        """2xx answers per host among requests started in [since, until)."""
        with self.lock:
            sent = list(self.sent)
        return Counter(
            s.host or "none"
            for s in sent
            if s.answer.ok
            and (since is None or s.answer.started >= since)
            and (until is None or s.answer.started < until)
        )
