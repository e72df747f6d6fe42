"""Sending the plan: a few client lanes (threads, one httpx client each), paced, bounded.

Requests are signed exactly as the providers sign them (leadline/provider_signing.py, with
the field lists `leadline simulate` uses). Every request is recorded with the wall-clock
moments it was sent and answered, and its status (None: no answer).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx

from leadline import provider_signing
from leadline.commands.simulate import twilio_sms_params
from tests.chaos.plan import LEAD, SMS, Step

REQUEST_TIMEOUT_SECONDS = 10.0
TWILIO_PATH = "/hooks/twilio/sms"


@dataclass(frozen=True)
class OrgTarget:
    org_id: str
    api_key: str
    number: str  # the org's Twilio number: inbound SMS go to it, its SMS come from it
    alert_number: str
    customer: str  # its Stripe customer id


@dataclass(frozen=True)
class Target:
    intake_url: str
    public_url: str  # what Twilio signs (LEADLINE_PUBLIC_URL)
    twilio_token: str
    twilio_account_sid: str
    stripe_secret: str
    orgs: Sequence[OrgTarget]


@dataclass(frozen=True)
class Answer:
    step: Step
    started: float  # Unix seconds
    finished: float
    status: int | None
    event_id: str | None = None  # the id a 202 from POST /v1/leads carries

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def lead_request(step: Step, org: OrgTarget) -> tuple[str, bytes, dict[str, str]]:
    headers = {"Authorization": f"Bearer {org.api_key}", "Content-Type": "application/json"}
    if step.key is not None:
        headers["Idempotency-Key"] = step.key
    return "/v1/leads", json.dumps(step.body).encode(), headers


def sms_request(step: Step, org: OrgTarget, target: Target) -> tuple[str, bytes, dict[str, str]]:
    assert step.key is not None and step.phone is not None and step.text is not None
    params = twilio_sms_params(step.key, target.twilio_account_sid, step.phone, org.number)
    params.append(("Body", step.text))
    url = target.public_url.rstrip("/") + TWILIO_PATH
    body, headers = provider_signing.twilio_form(target.twilio_token, url, params)
    return TWILIO_PATH, body, headers


def stripe_request(step: Step, target: Target, now: int) -> tuple[str, bytes, dict[str, str]]:
    # Stripe re-signs a redelivered event with a new timestamp; the body is the same.
    payload = json.dumps(step.body, indent=2).encode()
    return (
        "/hooks/stripe",
        payload,
        provider_signing.stripe_headers(target.stripe_secret, payload, now),
    )


def request_for(step: Step, target: Target, now: int) -> tuple[str, bytes, dict[str, str]]:
    org = target.orgs[step.org]
    if step.kind == LEAD:
        return lead_request(step, org)
    if step.kind == SMS:
        return sms_request(step, org, target)
    return stripe_request(step, target, now)


def event_id_of(response: httpx.Response) -> str | None:
    if response.status_code != 202:
        return None
    try:
        value = response.json().get("id")
    except (ValueError, AttributeError):
        return None
    return str(value) if value else None


def send(client: httpx.Client, step: Step, target: Target) -> Answer:
    path, body, headers = request_for(step, target, int(time.time()))
    started = time.time()
    try:
        response = client.post(target.intake_url + path, content=body, headers=headers)
    except httpx.HTTPError:
        return Answer(step, started, time.time(), None)
    return Answer(step, started, time.time(), response.status_code, event_id_of(response))


@dataclass
class Load:
    """Step i is sent no earlier than `rate`·i seconds after the start, none after `deadline`."""

    plan: Sequence[Step]
    target: Target
    rate: float
    deadline: float  # seconds after the start
    answers: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, stop: threading.Event, progress: Callable[[float], None]) -> list[Answer]:
        start = time.time()
        lanes: dict[int, list[Step]] = defaultdict(list)
        for step in self.plan:
            lanes[step.lane].append(step)
        threads = [
            threading.Thread(target=self.lane, args=(steps, start, stop), daemon=True)
            for steps in lanes.values()
        ]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            time.sleep(1.0)
            progress(time.time() - start)
        return sorted(self.answers, key=lambda answer: answer.step.index)

    def lane(self, steps: list[Step], start: float, stop: threading.Event) -> None:
        with httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS) as client:
            for step in steps:
                wait = start + step.index / self.rate - time.time()
                if stop.wait(max(wait, 0.0)) or time.time() > start + self.deadline:
                    return
                answer = send(client, step, self.target)
                with self.lock:
                    self.answers.append(answer)

    def tally(self) -> Counter[str]:
        with self.lock:
            answers = list(self.answers)
        return Counter("2xx" if a.ok else "other" for a in answers)
