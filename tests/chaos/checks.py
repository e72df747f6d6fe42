"""The six checks, as pure functions over what the run recorded and what it read back.

Inputs are plain records (ids, states, Unix times, digests of bodies); outputs are a
CheckResult with counts and violations. Violations name request numbers, row ids and
provider sids, never a phone number or a message body.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

LEAD_FIELDS = ("name", "phone", "email", "message", "source", "consent")
LEAD_EVENTS = frozenset({"lead.created", "lead.updated"})
# An outbound row in one of these states may have reached the provider (unknown: maybe).
MAY_HAVE_REACHED = frozenset({"sent", "delivered", "undelivered", "unknown"})
AT_LEAST_ONCE_PURPOSES = frozenset({"owner_alert", "reply_alert"})
SHOWN_VIOLATIONS = 3


@dataclass(frozen=True)
class Request:
    """One request the load sent, with what the checks need of it."""

    index: int
    intent: str
    org_id: str
    source: str  # api | twilio_sms | stripe
    external_id: str | None  # Idempotency-Key, MessageSid or Stripe event id
    phone: str | None
    started: float
    finished: float
    status: int | None
    event_id: str | None = None  # the id a 202 carried
    lead: str | None = None  # lead_fingerprint of the body sent (API)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class StoredEvent:
    id: str
    org_id: str
    source: str
    external_id: str | None
    status: str
    lead: str | None = None  # lead_fingerprint of the stored payload (API)


@dataclass(frozen=True)
class StoredLead:
    id: str
    org_id: str
    phone: str | None


@dataclass(frozen=True)
class Outbound:
    """An SMS row; `body` is a digest, `called_at` its provider_call_at (Unix seconds)."""

    id: str
    org_id: str
    purpose: str
    state: str
    sender: str | None
    recipient: str
    body: str
    sid: str | None
    called_at: float | None
    code: str | None


@dataclass(frozen=True)
class ProviderSms:
    """An SMS the sandbox accepted; `at` is when it did (Unix seconds), `body` a digest."""

    to: str
    sender: str | None
    body: str
    sid: str
    at: float


@dataclass(frozen=True)
class Delivery:
    id: str
    org_id: str
    endpoint_id: str
    webhook_id: str
    event_type: str
    state: str
    inbound_event_id: str | None = None  # for lead.* events


@dataclass
class CheckResult:
    name: str
    violations: list[str] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations


def digest(text: str) -> str:
    """Tells bodies apart without keeping them."""
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def lead_fingerprint(lead: Mapping[str, Any]) -> str:
    """The lead fields of a request body or of a stored payload, comparable. A consent flag
    left out of a body is false (the schema's default), as the stored payload spells out."""
    fields = {key: lead.get(key) for key in LEAD_FIELDS}
    consent = fields.get("consent")
    if isinstance(consent, Mapping):
        fields["consent"] = {key: value for key, value in consent.items() if value is not False}
    return json.dumps(fields, sort_keys=True)


def some(ids: Iterable[str]) -> str:
    listed = sorted(ids)
    more = f" and {len(listed) - SHOWN_VIOLATIONS} more" if len(listed) > SHOWN_VIOLATIONS else ""
    return ", ".join(listed[:SHOWN_VIOLATIONS]) + more


# --------------------------------------------------------------------------- 1


def stored_event_for(
    request: Request,
    by_key: Mapping[tuple[str, str, str], StoredEvent],
    by_id: Mapping[str, StoredEvent],
) -> StoredEvent | None:
    """The event a 202's id names, else the one stored under the request's external id (a
    retry answered while the database was down carries an id of its own)."""
    if request.event_id is not None and request.event_id in by_id:
        return by_id[request.event_id]
    if request.external_id is None:
        return None
    return by_key.get((request.org_id, request.source, request.external_id))


def request_problem(request: Request, event: StoredEvent | None) -> str | None:
    name = f"request #{request.index} ({request.source} {request.intent}, {request.status})"
    if event is None:
        return f"{name}: no inbound event stored for it"
    if event.status != "processed":
        return f"{name}: event {event.id} is {event.status}"
    if request.lead is not None and event.lead is not None and request.lead != event.lead:
        return f"{name}: event {event.id} under its key holds another lead, this one was not kept"
    return None


def fan_out_problems(
    events: Sequence[StoredEvent],
    deliveries: Sequence[Delivery],
    endpoints: Mapping[str, Sequence[str]],
) -> list[str]:
    """Each processed API event announces its lead once to each of the org's endpoints."""
    announced = Counter(
        (d.endpoint_id, d.inbound_event_id) for d in deliveries if d.event_type in LEAD_EVENTS
    )
    problems = []
    for event in events:
        if event.source != "api" or event.status != "processed":
            continue
        for endpoint in endpoints.get(event.org_id, ()):
            count = announced[(endpoint, event.id)]
            if count != 1:
                problems.append(f"event {event.id}: {count} lead webhooks for endpoint {endpoint}")
    return problems


def processed_once(
    requests: Sequence[Request],
    events: Sequence[StoredEvent],
    deliveries: Sequence[Delivery],
    endpoints: Mapping[str, Sequence[str]],
) -> CheckResult:
    result = CheckResult("every 2xx processed exactly once")
    by_key = {(e.org_id, e.source, e.external_id): e for e in events if e.external_id is not None}
    by_id = {event.id: event for event in events}
    answered = [request for request in requests if request.ok]
    for request in answered:
        problem = request_problem(request, stored_event_for(request, by_key, by_id))
        if problem is not None:
            result.violations.append(problem)
    result.violations += fan_out_problems(events, deliveries, endpoints)
    matched = {stored_event_for(r, by_key, by_id) for r in answered} - {None}
    result.notes = {
        "answered 2xx": len(answered),
        "events they map to": len(matched),
        "202 ids that are not the stored event's": sum(
            1
            for r in answered
            if r.event_id is not None and r.event_id not in by_id and r.external_id is not None
        ),
    }
    return result


# --------------------------------------------------------------------------- 2


def one_lead_per_phone(leads: Sequence[StoredLead]) -> CheckResult:
    result = CheckResult("no duplicate lead")
    by_phone: dict[tuple[str, str], list[str]] = defaultdict(list)
    for lead in leads:
        if lead.phone is not None:
            by_phone[(lead.org_id, lead.phone)].append(lead.id)
    for (org_id, _), ids in by_phone.items():
        if len(ids) > 1:
            result.violations.append(f"org {org_id}: {len(ids)} leads for one phone ({some(ids)})")
    result.notes = {"leads": len(leads), "phones": len(by_phone)}
    return result


# --------------------------------------------------------------------------- 3


def content_key(sender: str | None, recipient: str, body: str) -> tuple[str, str, str]:
    return (sender or "", recipient, body)


def sms_at_most_once(outbound: Sequence[Outbound], provider: Sequence[ProviderSms]) -> CheckResult:
    """Per (from, to, body): never more provider messages than rows that may have been sent
    (an alert re-sent after reconciliation found nothing may count twice), and no provider
    message held by two rows."""
    result = CheckResult("no SMS twice")
    held = Counter(row.sid for row in outbound if row.sid)
    result.violations += [
        f"provider message {sid} is held by {n} outbound rows" for sid, n in held.items() if n > 1
    ]
    rows: dict[tuple[str, str, str], list[Outbound]] = defaultdict(list)
    for row in outbound:
        rows[content_key(row.sender, row.recipient, row.body)].append(row)
    received = Counter(content_key(m.sender, m.to, m.body) for m in provider)
    for key, count in received.items():
        eligible = [row for row in rows.get(key, []) if row.state in MAY_HAVE_REACHED]
        resent = [
            r
            for r in eligible
            if r.code == "resent_unknown" and r.purpose in AT_LEAST_ONCE_PURPOSES
        ]
        if count > len(eligible) + len(resent):
            ids = some(row.id for row in rows.get(key, [])) or "no row"
            result.violations.append(
                f"{count} provider messages for {len(eligible)} rows that may have sent them "
                f"({ids})"
            )
    result.notes = {"provider messages": len(provider), "outbound sms rows": len(outbound)}
    return result


# --------------------------------------------------------------------------- 4


@dataclass(frozen=True)
class StopWindow:
    """From a STOP's 2xx until the next START from that phone was sent (or forever)."""

    stop: Request
    until: float

    def holds(self, moment: float) -> bool:
        return self.stop.finished < moment < self.until


def stop_windows(requests: Sequence[Request]) -> dict[tuple[str, str], list[StopWindow]]:
    texts = [r for r in requests if r.source == "twilio_sms" and r.phone is not None]
    starts: dict[tuple[str, str], list[float]] = defaultdict(list)
    for request in texts:
        if request.intent == "start":  # answered or not: it may have reached us
            starts[(request.org_id, request.phone or "")].append(request.started)
    windows: dict[tuple[str, str], list[StopWindow]] = defaultdict(list)
    for request in texts:
        if request.intent == "stop" and request.ok:
            key = (request.org_id, request.phone or "")
            later = [moment for moment in starts[key] if moment > request.finished]
            windows[key].append(StopWindow(request, min(later, default=math.inf)))
    return windows


def rows_behind(
    message: ProviderSms,
    org_id: str,
    by_sid: Mapping[str, Outbound],
    by_content: Mapping[tuple[str, str, str], list[Outbound]],
) -> list[Outbound]:
    """The row that sent a provider message: by its sid, else the rows with its content that
    hold no other message's sid."""
    if message.sid in by_sid:
        return [by_sid[message.sid]]
    candidates = by_content.get((org_id, message.to, message.body), [])
    return [row for row in candidates if row.sid in (None, message.sid)]


def nothing_after_stop(
    requests: Sequence[Request],
    outbound: Sequence[Outbound],
    provider: Sequence[ProviderSms],
    org_of_number: Mapping[str, str],
) -> CheckResult:
    """No SMS to a number after its STOP's 2xx until a later START, unless its provider call
    was already decided (provider_call_at) before that 2xx: then it was in flight."""
    result = CheckResult("no SMS after the STOP's 2xx")
    windows = stop_windows(requests)
    by_sid = {row.sid: row for row in outbound if row.sid}
    by_content: dict[tuple[str, str, str], list[Outbound]] = defaultdict(list)
    for row in outbound:
        by_content[(row.org_id, row.recipient, row.body)].append(row)
    in_flight = 0
    for message in provider:
        org_id = org_of_number.get(message.sender or "")
        for window in windows.get((org_id or "", message.to), []):
            if not window.holds(message.at):
                continue
            rows = rows_behind(message, org_id or "", by_sid, by_content)
            stop = window.stop
            if any(r.called_at is not None and r.called_at <= stop.finished for r in rows):
                in_flight += 1
                continue
            what = some(f"{r.id} ({r.purpose})" for r in rows) or f"unmatched {message.sid}"
            late = message.at - stop.finished
            result.violations.append(
                f"outbound {what} reached the provider {late:.2f} s after STOP request "
                f"#{stop.index} was answered {stop.status}"
            )
    result.notes = {
        "STOPs answered 2xx": sum(len(w) for w in windows.values()),
        "sent after a STOP's 2xx but called before it": in_flight,
    }
    return result


# --------------------------------------------------------------------------- 5


def webhooks_delivered_or_scheduled(
    deliveries: Sequence[Delivery], accepted: set[str], bad_signatures: int
) -> CheckResult:
    result = CheckResult("every webhook delivered or scheduled")
    for delivery in deliveries:
        if delivery.state == "delivered" and delivery.webhook_id not in accepted:
            result.violations.append(
                f"delivery {delivery.id} is delivered but the receiver never accepted "
                f"{delivery.webhook_id}"
            )
        elif delivery.state in ("failed", "cancelled"):
            result.violations.append(f"delivery {delivery.id} ended {delivery.state}")
    if bad_signatures:
        result.violations.append(f"the receiver refused {bad_signatures} bad signatures")
    states = Counter(delivery.state for delivery in deliveries)
    result.notes = {f"deliveries {state}": n for state, n in sorted(states.items())}
    return result


# --------------------------------------------------------------------------- 6


def spool_drained(spooled: int, left: int) -> CheckResult:
    result = CheckResult("spool used and drained")
    if left:
        result.violations.append(f"{left} events are still in the spool")
    result.notes = {"events spooled": spooled, "left in the spool": left}
    return result
