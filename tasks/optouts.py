"""Opt-outs, in one place: what counts as STOP (keywords, free-text revocations, carrier
codes), recording one (suppression row + audit entry + `optout.changed`, once), lifting one
(START), and the check every send makes when it claims a message.

Keywords count only as the whole message (case-insensitive, trimmed, trailing punctuation
dropped). Free-text revocations ("please stop texting me") also opt out: when in doubt we
stop, because texting someone who asked us not to is the failure that matters.

Recorded by: the intake (an inbound STOP, with its event, before the 2xx: record_at_the_door),
the worker (a START, or a STOP stored before the intake did this), and a carrier refusal
(Twilio 21610 on a send or in a status callback). A suppression is keyed by the recipient's
blind index only and holds no lead id, so erasing a person never lifts their STOP. Its history
lives in the audit log (optout.added / optout.removed; target the blind index in hex).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models.audit import record_audit
from models.crypto import OrgCipher
from models.leads import phone_index
from models.messaging import Suppression
from models.tables import InboundEvent, Lead
from models.webhooks import EventType
from tasks.after_commit import AfterCommit
from tasks.domain_events import DomainEvent, EventData, publish

# --------------------------------------------------------------------------- what counts


class Intent(Enum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    MESSAGE = "message"


OPT_OUT_KEYWORDS = frozenset(
    {
        "stop",
        "stopall",
        "stop all",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "revoke",
        "optout",
        "opt out",
        "opt-out",
    }
)
OPT_IN_KEYWORDS = frozenset({"start", "yes", "unstop"})
HELP_KEYWORDS = frozenset({"help", "info"})
# Twilio's answer to a send to a number that texted STOP to it: the carrier's own opt-out.
CARRIER_OPT_OUT_CODES = frozenset({"21610"})

_VERBS = (
    r"(?:text|texting|txt|message|messaging|msg|contact|contacting|call|calling|sms"
    r"|send|sending|email|emailing)"
)
REVOCATION_PATTERNS = [
    re.compile(pattern)
    for pattern in (
        rf"\bstop\s+(?:all\s+)?{_VERBS}",
        r"\bstop\s+(?:it|this|these|now|please)\b",
        r"\bplease\s+stop\b(?!\s+by\b)",
        rf"\b(?:do\s*n[o']?t|dont|never)\s+{_VERBS}\s+me\b",
        r"\bunsubscribe\b",
        r"\bopt\s*-?\s*(?:me\s+)?out\b",
        r"\bremove\s+(?:me|my\s+(?:number|phone|name))\b",
        r"\btake\s+me\s+off\b",
        r"\bno\s+more\s+(?:texts?|messages?|msgs?|sms)\b",
        r"\b(?:leave|let)\s+me\s+alone\b",
        r"\bwrong\s+number\b",
        r"\bnot\s+interested\b",
    )
]
_TRAILING = re.compile(r"[\s.!?,;:'\"()\-]+$")
_LEADING = re.compile(r"^[\s\"'(]+")
_SPACES = re.compile(r"\s+")


def normalize_keyword(body: str) -> str:
    text = _SPACES.sub(" ", body.casefold())
    return _TRAILING.sub("", _LEADING.sub("", text))


def classify(body: str) -> Intent:
    keyword = normalize_keyword(body)
    if keyword in OPT_OUT_KEYWORDS:
        return Intent.OPT_OUT
    if keyword in OPT_IN_KEYWORDS:
        return Intent.OPT_IN
    if keyword in HELP_KEYWORDS:
        return Intent.HELP
    if any(pattern.search(keyword) for pattern in REVOCATION_PATTERNS):
        return Intent.OPT_OUT
    return Intent.MESSAGE


def optout_reason(body: str) -> str:
    """How an inbound opt-out was said: a keyword, or a revocation in free text."""
    return "keyword" if normalize_keyword(body) in OPT_OUT_KEYWORDS else "free_text"


def carrier_optout_reason(code: str | None) -> str | None:
    """The suppression reason for a carrier's refusal of a recipient (Twilio 21610, on a send
    or in a status callback), recorded like their own STOP; None for any other code."""
    return f"twilio_{code}" if code in CARRIER_OPT_OUT_CODES else None


# --------------------------------------------------------------------------- the check


def is_opted_out(session: Session, org_id: uuid.UUID, recipient_bidx: bytes) -> bool:
    """Whether nothing may be sent to this recipient: checked as each message is claimed, in
    the claim's transaction, and again just before the provider is called."""
    query = select(
        exists().where(Suppression.org_id == org_id, Suppression.recipient_bidx == recipient_bidx)
    )
    return bool(session.scalar(query))


# --------------------------------------------------------------------------- recording


@dataclass(frozen=True)
class OptoutChange:
    """Who (blind index), why, on whose behalf; where to publish, inside the caller's session."""

    session: Session
    cipher: OrgCipher
    recipient_bidx: bytes
    reason: str
    actor: str
    after_commit: AfterCommit
    now: datetime
    lead_id: uuid.UUID | None = None
    # When the request reached us (an inbound event's received_at); None means now.
    requested_at: datetime | None = None

    @property
    def org_id(self) -> uuid.UUID:
        return self.cipher.org_id


def record_optout(change: OptoutChange) -> bool:
    """Suppress, audit and publish; False (and nothing published) if already suppressed."""
    values = {"id": uuid.uuid4(), "org_id": change.org_id, "recipient_bidx": change.recipient_bidx}
    if change.requested_at is not None:
        values["created_at"] = change.requested_at  # what a later START compares with
    inserted = change.session.execute(
        insert(Suppression)
        .values(reason=change.reason, **values)
        .on_conflict_do_nothing(constraint="uq_suppressions_recipient")
        .returning(Suppression.id)
    ).scalar_one_or_none()
    if inserted is None:
        return False
    _announce(change, opted_out=True)
    return True


def lift_optout(change: OptoutChange, requested_at: datetime) -> bool:
    """Lift a suppression recorded before `requested_at` (when the START was received).

    A STOP received after the START keeps its suppression, whatever order the worker sees.
    """
    removed = change.session.execute(
        delete(Suppression)
        .where(
            Suppression.org_id == change.org_id,
            Suppression.recipient_bidx == change.recipient_bidx,
            Suppression.created_at < requested_at,
        )
        .returning(Suppression.id)
    ).first()
    if removed is None:
        return False
    _announce(change, opted_out=False)
    return True


def lead_id_for(session: Session, recipient_bidx: bytes) -> uuid.UUID | None:
    """The org's lead with this phone (the tenant scope picks the org), if any."""
    query = select(Lead.id).where(Lead.phone_bidx == recipient_bidx).limit(1)
    return session.scalar(query)


def _announce(change: OptoutChange, opted_out: bool) -> None:
    details: dict[str, object] = {"reason": change.reason, "channel": "sms"}
    if change.lead_id is not None:
        details["lead_id"] = str(change.lead_id)
    record_audit(
        change.session,
        change.actor,
        "optout.added" if opted_out else "optout.removed",
        org_id=change.org_id,
        target=f"recipient:{change.recipient_bidx.hex()}",
        details=details,
    )
    data: EventData = {
        "lead_id": str(change.lead_id) if change.lead_id else None,
        "opted_out": opted_out,
        "reason": change.reason,
        "channel": "sms",
    }
    publish(
        DomainEvent(
            change.session,
            change.cipher,
            EventType.OPTOUT_CHANGED,
            data,
            change.after_commit,
            change.now,
        )
    )


# --------------------------------------------------------------------------- at the door

INBOUND_ACTOR = "sms:inbound"


def record_at_the_door(
    session: Session,
    cipher: OrgCipher,
    event_id: uuid.UUID,
    sender: str,
    body: str,
    after_commit: AfterCommit,
    now: datetime,
) -> bool:
    """An inbound opt-out, recorded in the transaction that stores its event (before the 2xx).

    From that COMMIT on, every send to the number is blocked at claim time, whatever order the
    queue delivers later events in. The event is marked so the worker does not apply it again.
    """
    if classify(body) is not Intent.OPT_OUT:
        return False
    bidx = phone_index(cipher, sender)
    change = OptoutChange(
        session, cipher, bidx, optout_reason(body), INBOUND_ACTOR, after_commit, now
    )
    record_optout(replace(change, lead_id=lead_id_for(session, bidx)))
    session.execute(
        update(InboundEvent)
        .where(InboundEvent.id == event_id)
        .values(optout_recorded_at=func.now())
    )
    return True
