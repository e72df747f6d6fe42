"""The chaos run's checks and plan, as pure functions (part of `make test`; no services)."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from tasks.optouts import Intent, classify
from tests.chaos import checks
from tests.chaos.checks import Delivery, Outbound, ProviderSms, Request, StoredEvent, StoredLead
from tests.chaos.faults import KILL_WORKER, POSTGRES_DOWN_SECONDS, STOP_POSTGRES, fault_plan
from tests.chaos.plan import LEAD, TEXTS, PlanSpec, build_plan

pytestmark = pytest.mark.unit

INTENTS = {"stop": Intent.OPT_OUT, "start": Intent.OPT_IN, "help": Intent.HELP}
ORG, PHONE, NUMBER = "org-1", "+16505550100", "+12125550100"


def request(index: int, intent: str, **fields: object) -> Request:
    values: dict[str, object] = {
        "org_id": ORG,
        "source": "twilio_sms",
        "external_id": f"SM{index}",
        "phone": PHONE,
        "started": float(index),
        "finished": index + 0.5,
        "status": 200,
    }
    values.update(fields)
    return Request(index, intent, **values)  # type: ignore[arg-type]


def row(row_id: str, **fields: object) -> Outbound:
    values: dict[str, object] = {
        "org_id": ORG,
        "purpose": "help_reply",
        "state": "sent",
        "sender": NUMBER,
        "recipient": PHONE,
        "body": "b1",
        "sid": f"SM-{row_id}",
        "called_at": 1.0,
        "code": None,
    }
    values.update(fields)
    return Outbound(row_id, **values)  # type: ignore[arg-type]


def sms(sid: str, at: float, body: str = "b1") -> ProviderSms:
    return ProviderSms(PHONE, NUMBER, body, sid, at)


def test_the_texts_mean_to_leadline_what_the_plan_says() -> None:
    for intent, texts in TEXTS.items():
        for text in texts:
            assert classify(text) is INTENTS.get(intent, Intent.MESSAGE), text


def test_a_plan_is_its_seed_and_keeps_each_phone_on_one_lane_in_order() -> None:
    spec = PlanSpec(orgs=3, events=400, lanes=4, stripe_customers=["a", "b", "c"], created_at=1)
    plan = build_plan(random.Random(7), spec)
    assert plan == build_plan(random.Random(7), spec)
    assert len(plan) == 400 and [step.index for step in plan] == list(range(400))
    lanes: dict[str, set[int]] = defaultdict(set)
    for step in plan:
        if step.phone is not None:
            lanes[step.phone].add(step.lane)
    assert all(len(used) == 1 for used in lanes.values())
    keys = [step.key for step in plan if step.kind == LEAD and step.intent == "new"]
    assert len(keys) == len(set(keys))


def test_faults_fit_in_the_load_and_kills_end_early() -> None:
    faults = fault_plan(random.Random(3), 170.0, worker_kills=6)
    assert [f.at for f in faults] == sorted(f.at for f in faults)
    assert sum(f.kind == KILL_WORKER for f in faults) == 6
    assert max(f.at for f in faults if f.kind == KILL_WORKER) <= 0.6 * 170
    (stop,) = [f for f in faults if f.kind == STOP_POSTGRES]
    assert stop.at + POSTGRES_DOWN_SECONDS < 170


def test_processed_once_finds_lost_pending_replaced_and_twice_announced_events() -> None:
    events = [
        StoredEvent("e1", ORG, "twilio_sms", "SM1", "processed"),
        StoredEvent("e2", ORG, "twilio_sms", "SM2", "pending"),
        StoredEvent("e4", ORG, "api", "key-4", "processed", lead="A"),
        StoredEvent("e5", ORG, "api", None, "processed", lead="B"),
    ]
    answered = [
        request(1, "chat"),
        request(2, "chat"),
        request(3, "chat"),  # no event at all
        request(4, "retry_other", source="api", external_id="key-4", lead="B", event_id="x"),
        request(5, "retry_other", source="api", external_id="key-4", lead="B", event_id="e5"),
        request(6, "chat", external_id="SM6", status=503),  # not a 2xx: no promise
    ]
    deliveries = [
        Delivery("d1", ORG, "ep", "msg_1", "lead.created", "delivered", "e4"),
        Delivery("d2", ORG, "ep", "msg_2", "lead.updated", "delivered", "e5"),
        Delivery("d3", ORG, "ep", "msg_3", "lead.updated", "delivered", "e5"),
    ]
    result = checks.processed_once(answered, events, deliveries, {ORG: ["ep"]})
    problems = "\n".join(result.violations)
    assert len(result.violations) == 4, problems
    assert "#2" in problems and "is pending" in problems
    assert "#3" in problems and "no inbound event" in problems
    assert "#4" in problems and "was not kept" in problems
    assert "event e5: 2 lead webhooks" in problems


def test_one_lead_per_phone() -> None:
    leads = [StoredLead("l1", ORG, PHONE), StoredLead("l2", ORG, PHONE)]
    leads += [StoredLead("l3", "org-2", PHONE), StoredLead("l4", ORG, None)]
    result = checks.one_lead_per_phone(leads)
    assert result.violations == [f"org {ORG}: 2 leads for one phone (l1, l2)"]


def test_sms_twice_is_caught_but_a_resent_alert_may_arrive_twice() -> None:
    rows = [row("r1"), row("r2", body="b2", state="blocked")]
    assert checks.sms_at_most_once(rows, [sms("SM-r1", 2.0)]).ok
    twice = checks.sms_at_most_once(rows, [sms("SM-r1", 2.0), sms("SM-x", 3.0)])
    assert len(twice.violations) == 1 and "2 provider messages for 1 rows" in twice.violations[0]
    blocked = checks.sms_at_most_once(rows, [sms("SM-y", 2.0, body="b2")])
    assert not blocked.ok
    alert = row("r3", purpose="owner_alert", code="resent_unknown")
    assert checks.sms_at_most_once([alert], [sms("SM-r3", 2.0), sms("SM-z", 9.0)]).ok
    shared = checks.sms_at_most_once([row("r4"), row("r5", body="b5", sid="SM-r4")], [])
    assert shared.violations == ["provider message SM-r4 is held by 2 outbound rows"]


def test_nothing_after_stop_until_a_later_start() -> None:
    requests = [request(10, "stop"), request(20, "start", status=None), request(30, "stop")]
    # STOP #10 answered at 10.5; START #20 sent at 20.0; STOP #30 answered at 30.5.
    rows = [
        row("before", sid="SM-before", called_at=9.0),
        row("inflight", sid="SM-inflight", called_at=10.2),
        row("late", sid="SM-late", called_at=12.0),
        row("lifted", sid="SM-lifted", called_at=25.0),
        row("again", sid="SM-again", called_at=31.0),
    ]
    provider = [
        sms("SM-before", 9.5),
        sms("SM-inflight", 10.7),
        sms("SM-late", 12.5),
        sms("SM-lifted", 25.5),
        sms("SM-again", 31.5),
        ProviderSms(PHONE, "+12125550999", "b1", "SM-other-org", 12.0),
    ]
    result = checks.nothing_after_stop(requests, rows, provider, {NUMBER: ORG})
    assert len(result.violations) == 2, result.violations
    assert result.violations[0].startswith("outbound late (help_reply) reached the provider 2.00 s")
    assert "again" in result.violations[1] and "#30" in result.violations[1]
    assert result.notes["sent after a STOP's 2xx but called before it"] == 1


def test_webhooks_delivered_or_scheduled() -> None:
    deliveries = [
        Delivery("d1", ORG, "ep", "msg_1", "lead.created", "delivered"),
        Delivery("d2", ORG, "ep", "msg_2", "lead.created", "delivered"),
        Delivery("d3", ORG, "ep", "msg_3", "lead.created", "pending"),
        Delivery("d4", ORG, "ep", "msg_4", "lead.created", "failed"),
    ]
    result = checks.webhooks_delivered_or_scheduled(deliveries, {"msg_1"}, bad_signatures=1)
    assert result.violations == [
        "delivery d2 is delivered but the receiver never accepted msg_2",
        "delivery d4 ended failed",
        "the receiver refused 1 bad signatures",
    ]


def test_spool_drained() -> None:
    assert checks.spool_drained(12, 0).ok
    assert checks.spool_drained(12, 3).violations == ["3 events are still in the spool"]


def test_a_consent_flag_left_out_is_the_same_lead_as_one_stored_false() -> None:
    sent = {"name": "A", "phone": PHONE, "consent": {"sms": True, "text": "I agree"}}
    stored = {**sent, "consent": {"sms": True, "email": False, "text": "I agree"}}
    assert checks.lead_fingerprint(sent) == checks.lead_fingerprint(stored)
    other = {**sent, "consent": {"sms": True, "email": True, "text": "I agree"}}
    assert checks.lead_fingerprint(sent) != checks.lead_fingerprint(other)
