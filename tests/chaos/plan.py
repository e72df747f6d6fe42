"""The load, planned up front from a seed: which request is sent, in which order, by which lane.

Pure (no I/O, no clock). A lead phone's requests are all sent by one client lane, in plan
order, so a START planned after a STOP is sent only once the STOP was answered (check 4
relies on it). Each phone follows a short script: maybe an API lead (sometimes retried with
its Idempotency-Key, with the same or another body), conversation texts, HELP, STOP and what
follows it (HELP, texts, a lead update), and sometimes START then HELP. Stripe events are
sprinkled in, a quarter of them delivered twice.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from leadline.commands.simulate import stripe_event

LEAD, SMS, STRIPE = "lead", "sms", "stripe"
STRIPE_SHARE = 0.08
STRIPE_REPLAY_SHARE = 0.25
STRIPE_TYPES = ("customer.subscription.updated", "customer.subscription.created")
# What each texted word means to Leadline's classifier (tests/chaos/test_checks.py checks it).
TEXTS: dict[str, tuple[str, ...]] = {
    "stop": ("STOP", "stop", "Stop.", "UNSUBSCRIBE", "please stop texting me"),
    "start": ("START", "unstop"),
    "help": ("HELP", "info"),
    "chat": (
        "Is Tuesday morning ok for the quote?",
        "Thanks, what would it cost?",
        "Can you stop by Tuesday?",
        "Do you do gutters too?",
    ),
}


@dataclass(frozen=True)
class Step:
    """One request. `key`: the Idempotency-Key (None: none sent), MessageSid or event id."""

    index: int
    kind: str  # lead | sms | stripe
    intent: (
        str  # lead: new, no_key, retry_same, retry_other, update; sms: TEXTS; stripe: event, replay
    )
    org: int
    lane: int
    phone: str | None = None
    text: str | None = None
    key: str | None = None
    body: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class PlanSpec:
    orgs: int
    events: int
    lanes: int
    stripe_customers: Sequence[str]
    created_at: int  # Unix seconds, the `created` of the Stripe events


def hex_token(rng: random.Random, bits: int = 64) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def distinct_numbers(rng: random.Random, prefix: str, count: int) -> list[str]:
    """+1 numbers with a fixed area code, valid for phonenumbers, none repeated."""
    return [f"{prefix}{n:07d}" for n in rng.sample(range(2_000_000, 10_000_000), count)]


def lead_body(token: str, phone: str, message: str) -> dict[str, Any]:
    return {
        "name": f"Chaos Lead {token}",
        "phone": phone,
        "email": f"lead-{token}@example.com",
        "message": message,
        "source": "chaos",
        "consent": {"sms": True, "text": "I agree to receive texts"},
    }


def draft(kind: str, intent: str, org: int, lane: int, **fields: Any) -> Step:
    return Step(-1, kind, intent, org, lane, **fields)


def lead_steps(rng: random.Random, org: int, lane: int, phone: str) -> list[Step]:
    token = hex_token(rng, 32)
    body = lead_body(token, phone, "I'd like a quote")
    if rng.random() < 0.1:
        return [draft(LEAD, "no_key", org, lane, phone=phone, body=body)]
    key = f"chaos-{token}"
    steps = [draft(LEAD, "new", org, lane, phone=phone, key=key, body=body)]
    if rng.random() < 0.2:
        steps.append(draft(LEAD, "retry_same", org, lane, phone=phone, key=key, body=body))
    if rng.random() < 0.1:
        other = {**body, "message": "A different question under the same key"}
        steps.append(draft(LEAD, "retry_other", org, lane, phone=phone, key=key, body=other))
    return steps


def sms(rng: random.Random, intent: str, org: int, lane: int, phone: str) -> Step:
    sid = "SM" + hex_token(rng, 128)
    text = rng.choice(TEXTS[intent])
    return draft(SMS, intent, org, lane, phone=phone, text=text, key=sid)


def after_stop(rng: random.Random, org: int, lane: int, phone: str) -> Step:
    choice = rng.choice(("help", "chat", "update"))
    if choice != "update":
        return sms(rng, choice, org, lane, phone)
    token = hex_token(rng, 32)
    body = lead_body(token, phone, "Following up after my STOP")
    return draft(LEAD, "update", org, lane, phone=phone, key=f"chaos-{token}", body=body)


def phone_script(rng: random.Random, org: int, lane: int, phone: str) -> list[Step]:
    steps = lead_steps(rng, org, lane, phone) if rng.random() < 0.75 else []
    steps += [sms(rng, "chat", org, lane, phone) for _ in range(rng.choice((0, 1, 1, 2)))]
    if rng.random() < 0.3:
        steps.append(sms(rng, "help", org, lane, phone))
    if rng.random() < 0.45:
        steps.append(sms(rng, "stop", org, lane, phone))
        steps += [after_stop(rng, org, lane, phone) for _ in range(rng.randint(1, 2))]
        if rng.random() < 0.35:
            steps += [sms(rng, "start", org, lane, phone), sms(rng, "help", org, lane, phone)]
    return steps or [sms(rng, "chat", org, lane, phone)]


def phone_scripts(rng: random.Random, spec: PlanSpec, wanted: int) -> list[list[Step]]:
    """Scripts of distinct lead phones (spread over orgs and lanes) until `wanted` steps."""
    phones = distinct_numbers(rng, "+1650", max(wanted, 1))
    scripts: list[list[Step]] = []
    total = 0
    for number, phone in enumerate(phones):
        if total >= wanted:
            break
        script = phone_script(rng, number % spec.orgs, number % spec.lanes, phone)
        script = script[: wanted - total]
        scripts.append(script)
        total += len(script)
    return scripts


def stripe_steps(rng: random.Random, spec: PlanSpec, count: int) -> list[list[Step]]:
    """Each event alone, or followed (later) by its replay: same id, same body."""
    scripts: list[list[Step]] = []
    remaining = count
    while remaining > 0:
        org = rng.randrange(spec.orgs)
        event = stripe_event(rng.choice(STRIPE_TYPES), spec.stripe_customers[org], spec.created_at)
        event["id"] = "evt_" + hex_token(rng, 96)
        event["data"]["object"]["id"] = "sub_" + hex_token(rng, 96)  # both from the seed
        lane = len(scripts) % spec.lanes
        first = draft(STRIPE, "event", org, lane, key=event["id"], body=event)
        script = [first]
        if remaining > 1 and rng.random() < STRIPE_REPLAY_SHARE:
            script.append(replace(first, intent="replay", lane=(lane + 1) % spec.lanes))
        scripts.append(script)
        remaining -= len(script)
    return scripts


def interleave(rng: random.Random, scripts: Sequence[Sequence[Step]]) -> list[Step]:
    """All steps in one order that keeps each script's own order, spread over the run."""
    keyed: list[tuple[float, int, Step]] = []
    for number, script in enumerate(scripts):
        moments = sorted(rng.random() for _ in script)
        keyed += [(moment, number, step) for moment, step in zip(moments, script, strict=True)]
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [replace(step, index=index) for index, (_, _, step) in enumerate(keyed)]


def build_plan(rng: random.Random, spec: PlanSpec) -> list[Step]:
    stripe_count = round(spec.events * STRIPE_SHARE)
    scripts = phone_scripts(rng, spec, spec.events - stripe_count)
    return interleave(rng, [*scripts, *stripe_steps(rng, spec, stripe_count)])


def business_numbers(rng: random.Random, orgs: int) -> tuple[list[str], list[str]]:
    """Each org's Twilio number and its owner's alert number: no lead phone (+1650) is one."""
    return distinct_numbers(rng, "+1212", orgs), distinct_numbers(rng, "+1917", orgs)
