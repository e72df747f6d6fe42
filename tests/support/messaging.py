"""Helpers for the messaging tests: org numbers, alert targets, inbound SMS, row lookups."""

from __future__ import annotations

import dataclasses
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from leadline.sandbox import SandboxState, SentMessage
from leadline.settings import Settings
from models.channels import OrgPhoneNumber, TelegramChat
from models.messaging import OutboundMessage
from tests.support.processes import child_env

if TYPE_CHECKING:
    from tasks.context import TaskContext


def random_phone() -> str:
    return f"+1415555{random.randint(0, 9999):04d}"


def distinct_phones(count: int) -> list[str]:
    return [f"+1650{n:07d}" for n in random.sample(range(2_000_000, 10_000_000), count)]


def add_business_number(context: TaskContext, org_id: uuid.UUID) -> str:
    """The org's own Twilio number (the sender of its SMS, and where replies arrive)."""
    number = f"+1212{random.randint(2_000_000, 9_999_999)}"
    with context.db.tenant(org_id) as session:
        session.add(OrgPhoneNumber(org_id=org_id, number=number))
    return number


def add_alert_number(context: TaskContext, org_id: uuid.UUID, number: str) -> uuid.UUID:
    from models.alert_settings import add_alert_number as add

    with context.db.tenant(org_id) as session:
        return add(session, context.keys.cipher(session, org_id), number, actor="test")


def link_chat(context: TaskContext, org_id: uuid.UUID, chat_id: int) -> uuid.UUID:
    row_id = uuid.uuid4()
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        session.add(
            TelegramChat(
                id=row_id,
                org_id=org_id,
                chat_id_ct=cipher.encrypt_text(
                    str(chat_id), "telegram_chats", "chat_id_ct", row_id
                ),
                chat_bidx=cipher.blind_index("telegram_chat", str(chat_id)),
                status="linked",
                linked_at=context.clock(),
            )
        )
    return row_id


def inbound_sms(
    context: TaskContext, org_id: uuid.UUID, sender: str, body: str, to: str = ""
) -> Any:
    """Exactly what POST /hooks/twilio/sms stores after verifying the signature."""
    from intake.inbox import store_inbound_event

    sid = "SM" + uuid.uuid4().hex
    params = {"From": sender, "To": to, "Body": body, "MessageSid": sid, "NumMedia": "0"}
    return store_inbound_event(context, org_id, "twilio_sms", sid, {"params": params})


def status_callback(
    context: TaskContext, org_id: uuid.UUID, sid: str, status: str, error: str = ""
) -> Any:
    from intake.inbox import store_inbound_event

    params = {"MessageSid": sid, "MessageStatus": status}
    if error:
        params["ErrorCode"] = error
    return store_inbound_event(
        context, org_id, "twilio_status", f"{sid}:{status}", {"params": params}
    )


def outbound_rows(context: TaskContext, org_id: uuid.UUID, **filters: Any) -> list[OutboundMessage]:
    with context.db.tenant(org_id) as session:
        query = select(OutboundMessage).filter_by(**filters).order_by(OutboundMessage.created_at)
        return list(session.scalars(query).all())


def states(context: TaskContext, org_id: uuid.UUID, **filters: Any) -> Counter[str]:
    return Counter(row.state for row in outbound_rows(context, org_id, **filters))


def messages_settled(
    context: TaskContext, org_id: uuid.UUID, expected: int, **filters: Any
) -> bool:
    """All `expected` rows exist and none is waiting to be sent."""
    rows = outbound_rows(context, org_id, **filters)
    return len(rows) == expected and all(r.state not in ("queued", "sending") for r in rows)


def sent_to(state: SandboxState, to: str) -> list[SentMessage]:
    return [record for record in state.sent() if record["to"] == to]


def assert_no_duplicates(state: SandboxState) -> None:
    bodies = Counter((r["channel"], r["to"], r["body"]) for r in state.sent())
    repeated = [key for key, count in bodies.items() if count > 1]
    assert repeated == [], f"the sandbox received {len(repeated)} messages more than once"


@contextmanager
def captured_events() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Domain events (type, data) published while the block runs, from any thread."""
    from tasks import wiring
    from tasks.domain_events import DomainEvent

    events: list[tuple[str, dict[str, Any]]] = []

    def listener(event: DomainEvent) -> None:
        events.append((event.type, dict(event.data)))

    subscribers = wiring.DOMAIN_EVENT_SUBSCRIBERS
    wiring.DOMAIN_EVENT_SUBSCRIBERS = (*subscribers, listener)
    try:
        yield events
    finally:
        wiring.DOMAIN_EVENT_SUBSCRIBERS = subscribers


def queue_alerts(
    context: TaskContext, org_id: uuid.UUID, to: str, count: int, enqueue: bool = True
) -> list[uuid.UUID]:
    """`count` owner alerts to `to` with distinct bodies, inserted and (optionally) enqueued."""
    from models.leads import phone_index
    from models.outbound_messages import NewOutbound, queue_outbound
    from tasks.sending import enqueue_send

    batch = uuid.uuid4().hex[:8]
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        messages = [
            NewOutbound(
                channel="sms",
                purpose="owner_alert",
                idempotency_key=f"test:{batch}:{index}",
                recipient=to,
                recipient_bidx=phone_index(cipher, to),
                body=f"alert {batch} #{index}",
                sender="+15005550006",
            )
            for index in range(count)
        ]
        rows = queue_outbound(session, cipher, messages, context.clock())
    if enqueue:
        for row in rows:
            enqueue_send("sms", org_id, row.id)
    return [row.id for row in rows]


@contextmanager
def tuned_settings(context: TaskContext, **overrides: Any) -> Iterator[Any]:
    """Workers (via get_context) see these settings while the block runs."""
    import dataclasses

    from tasks.context import set_context

    tuned = dataclasses.replace(context, settings=context.settings.model_copy(update=overrides))
    set_context(tuned)
    try:
        yield tuned
    finally:
        set_context(context)


def make_leads(
    context: TaskContext, org_id: uuid.UUID, phones: list[str], consent: bool = True
) -> list[uuid.UUID]:
    from models.leads import LeadFields, upsert_lead

    now = context.clock()
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        return [
            upsert_lead(
                session,
                cipher,
                LeadFields(
                    phone=phone,
                    name=f"Lead {phone[-4:]}",
                    sms_consent=consent,
                    consent_text="I agree" if consent else None,
                    consent_at=now if consent else None,
                ),
            ).lead.id
            for phone in phones
        ]


def suppress_numbers(context: TaskContext, org_id: uuid.UUID, phones: list[str]) -> None:
    from models.leads import phone_index
    from tasks.after_commit import AfterCommit
    from tasks.optouts import OptoutChange, record_optout

    after_commit = AfterCommit()
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        for phone in phones:
            bidx = phone_index(cipher, phone)
            change = OptoutChange(
                session, cipher, bidx, "keyword", "test", after_commit, context.clock()
            )
            record_optout(change)
    after_commit.flush()


LEADLINE = str(Path(sys.executable).parent / "leadline")


def run_leadline(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `leadline` command, as an operator runs it, on the test services."""
    return subprocess.run(
        [LEADLINE, *args],
        env=child_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class SteppedClock:
    """Runs at real speed from a chosen instant; `set` jumps to another (TaskContext.clock)."""

    def __init__(self, start: datetime) -> None:
        self.set(start)

    def set(self, at: datetime) -> None:
        self._anchor, self._since = at, time.monotonic()

    def __call__(self) -> datetime:
        return self._anchor + timedelta(seconds=time.monotonic() - self._since)


# 15:00 in New York, 12:00 in Los Angeles, 09:00 in Honolulu: inside every US window.
US_DAYTIME = datetime(2026, 6, 10, 19, 0, tzinfo=UTC)


@contextmanager
def clock_at(context: TaskContext, start: datetime = US_DAYTIME) -> Iterator[Any]:
    """Workers (via get_context) read the time from a SteppedClock while the block runs.

    Campaigns under it must use their own sending number (add_business_number): pacing slots
    booked on a shared number at another time would be far from this clock."""
    from tasks.context import set_context

    clocked = dataclasses.replace(context, clock=SteppedClock(start))
    set_context(clocked)
    try:
        yield clocked
    finally:
        set_context(context)
