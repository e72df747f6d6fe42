"""Opt-outs, in one place: what counts as STOP (keywords, free-text revocations, carrier
codes), recording one (suppression row + audit entry + `optout.changed`, once), lifting one
(START), and the check every send makes when it claims a message.

Keywords (English, French, Spanish) count only as the whole message, read by
normalize_keyword: case, accents, emoji and punctuation at either end, and spacing do not
matter. Free-text revocations ("please stop texting me", "wrong number", "no me manden más")
also opt out: when in doubt we stop, because texting someone who asked us not to is the
failure that matters. Every ambiguous choice is listed in docs/messaging.md.

Recorded by: the intake (an inbound STOP, with its event, before the 2xx: record_inbound_optout),
the worker (a START, or a STOP stored before the intake did this), a carrier refusal (Twilio
21610 on a send or in a status callback), and the business itself for an opt-out it received
another way (by phone, email, on the web, in person: record_reported_optout). Email has its own
causes (record_email_suppression): a hard bounce or spam complaint Postmark reports, Postmark
refusing an inactive recipient, or a one-click unsubscribe; nothing lifts those. A suppression
is keyed by the recipient's blind index only and holds no lead id, so erasing a person never
lifts their STOP. Its history lives in the audit log (optout.added / optout.removed; target
the blind index in hex).
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Literal

from sqlalchemy import and_, delete, exists, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models.audit import OPTOUT_ADDED, OPTOUT_REMOVED, record_audit
from models.crypto import OrgCipher
from models.leads import email_index, phone_index, platform_index
from models.messaging import Suppression
from models.pagination import Position, after
from models.tables import Lead
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
        "remove",
        "optout",
        "opt out",
        "opt-out",
        # French (accents are folded before lookup: ARRÊT is read as arret)
        "arret",
        "arretez",
        # Spanish
        "parar",
        "alto",
        "baja",
        "cancelar",
    }
)
OPT_IN_KEYWORDS = frozenset({"start", "yes", "unstop"})
HELP_KEYWORDS = frozenset({"help", "info"})
# A provider's refusal of a recipient who opted out with it, and the suppression reason it
# becomes: Twilio's answer to a send to a number that texted STOP to it, and Postmark's to an
# address it marked inactive (after a hard bounce, a spam complaint or an unsubscribe).
CARRIER_OPT_OUT_REASONS = {"21610": "twilio_21610", "postmark_406": "email_inactive"}
CARRIER_OPT_OUT_CODES = frozenset(CARRIER_OPT_OUT_REASONS)
# Why an email address is suppressed (docs/messaging.md "Email suppression").
EmailSuppressionReason = Literal[
    "email_hard_bounce", "email_spam_complaint", "email_unsubscribe", "email_inactive"
]
# How a business may have received an opt-out it records itself (POST /v1/suppressions).
REPORTED_CHANNELS = ("email", "phone", "web", "in_person")
REPORTED_PREFIX = "reported_"
TABLE = "suppressions"
LEADS_TABLE = "leads"

_VERBS = (
    r"(?:text|texting|texts|txt|txting|message|messaging|msg|msging|contact|contacting|call"
    r"|calling|sms|send|sending|email|emailing|bother|bothering|spam|spamming)"
)
# "Don't stop texting me" asks for more, not less: a stop so negated is no opt-out.
_NOT_NEGATED = r"(?<!don't )(?<!dont )(?<!do not )(?<!never )(?<!won't )(?<!not )"
_PLEASE = r"(?:please|pls|plz|plez|just)"
REVOCATION_PATTERNS = [
    re.compile(pattern)
    for pattern in (
        rf"{_NOT_NEGATED}\b(?:stop|quit)\s+(?:all\s+)?{_VERBS}",
        # "stop it", "stop now", "stop please" only open the message: "will the leak stop
        # now?" is a question about a leak.
        rf"^(?:{_PLEASE}\s+)?stop\s+(?:it|this|these|that|now|please|pls|plz|already)\b",
        # A keyword opening the message, followed by a sentence: "Stop. Who is this?"
        r"^(?:stop|unsubscribe|stopall|parar|alto|arret)\s*[.!,;:]",
        # "please stop" as the last words: "please stop by" and "please stop the leak" are not
        rf"\b{_PLEASE}\s+stop(?:\s+(?:it|this|now|please|already))?$",
        rf"\b(?:do\s*n[o']?t|dont|never)\s+(?:ever\s+)?{_VERBS}\s+(?:me|this\s+number)\b",
        r"\bunsubscribe\b",
        r"\bopt\s*-?\s*(?:me\s+)?out\b",
        r"\bremove\s+(?:me|my\s+(?:number|phone|name|info))\b",
        r"\b(?:lose|delete|erase)\s+my\s+(?:number|phone\s+number|info|contact)\b",
        # "take me off the schedule" is about an appointment
        r"\btake\s+(?:me|my\s+number)\s+off\b"
        r"(?!\s+(?:the\s+|your\s+)?(?:schedule|calendar|appointment|hook|roof))",
        r"\bno\s+more\s+(?:texts?|texting|messages?|msgs?|sms|calls?|spam)\b",
        r"\b(?:leave|let)\s+me\s+alone\b",
        # "I gave you the wrong number" comes from the right one
        r"(?<!gave you the )(?<!gave you a )(?<!gave the )(?<!entered the )(?<!typed the )"
        r"(?<!put the )(?<!put in the )\bwrong\s+(?:number|person)\b",
        r"\bnot\s+interested\b",
        # Spanish, accents folded: "número equivocado", "darme de baja", "no más mensajes"
        r"\bnumero\s+equivocado\b",
        r"\bde\s+baja\b",
        r"\bno\s+mas\s+(?:mensajes|textos|sms)\b",
        r"\bno\s+(?:me\s+)?(?:manden|mande|mandes|envien|envie|envies|escriban|escribas)\s+mas\b",
        r"\bdej(?:en|a|e)\s+de\s+(?:mandar|enviar|escribir|llamar)",
        # French: "arrêtez de m'envoyer", "ne plus recevoir"
        r"\barret(?:ez|e)?\s+de\s+m'?(?:envoyer|ecrire|contacter|appeler)",
        r"\bne\s+plus\s+(?:recevoir|m'envoyer)\b",
    )
]
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_SPACES = re.compile(r"\s+")


def normalize_keyword(body: str) -> str:
    """Casefolded, compatibility-folded (fullwidth, ligatures), accents and invisible
    characters removed, inner spaces collapsed, and anything that is not a letter or a digit
    (punctuation, emoji, symbols) stripped from both ends."""
    decomposed = unicodedata.normalize("NFKD", body.casefold().translate(_APOSTROPHES))
    kept = "".join(ch for ch in decomposed if unicodedata.category(ch) not in _DROPPED)
    text = _SPACES.sub(" ", kept)
    start, end = 0, len(text)
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return text[start:end]


# Combining marks (the accent of ê once decomposed) and format characters (zero-width space,
# joiners, direction marks).
_DROPPED = frozenset({"Mn", "Cf"})


def classify(body: str) -> Intent:
    keyword = normalize_keyword(body)
    if keyword in OPT_OUT_KEYWORDS or _only_keywords(keyword):
        return Intent.OPT_OUT
    if keyword in OPT_IN_KEYWORDS:
        return Intent.OPT_IN
    if keyword in HELP_KEYWORDS:
        return Intent.HELP
    if any(pattern.search(keyword) for pattern in REVOCATION_PATTERNS):
        return Intent.OPT_OUT
    return Intent.MESSAGE


def _only_keywords(text: str) -> bool:
    """ "STOP STOP", "stop, unsubscribe": every word an opt-out keyword."""
    words = re.findall(r"[\w'-]+", text)
    return bool(words) and all(word in OPT_OUT_KEYWORDS for word in words)


def optout_reason(body: str) -> str:
    """How an inbound opt-out was said: a keyword, or a revocation in free text."""
    keyword = normalize_keyword(body)
    return "keyword" if keyword in OPT_OUT_KEYWORDS or _only_keywords(keyword) else "free_text"


def carrier_optout_reason(code: str | None) -> str | None:
    """The suppression reason for a provider's refusal of a recipient (Twilio 21610 on a send
    or in a status callback, Postmark's inactive recipient), recorded like their own opt-out;
    None for any other code."""
    return CARRIER_OPT_OUT_REASONS.get(code or "")


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
    # What is suppressed, and where it was said: SMS to a phone's blind index, email to an
    # address's, or an Instagram / Messenger / WhatsApp conversation by its platform user's.
    channel: str = "sms"

    @property
    def org_id(self) -> uuid.UUID:
        return self.cipher.org_id


def record_optout(change: OptoutChange) -> bool:
    """Suppress, audit and publish; False (and nothing published) if already suppressed.

    An existing suppression takes the later of the two times: a START lifts only what was said
    before it, so STOP, START, STOP ends opted out whatever order the START is seen in."""
    values = {"id": uuid.uuid4(), "org_id": change.org_id, "recipient_bidx": change.recipient_bidx}
    if change.requested_at is not None:
        values["created_at"] = change.requested_at
    statement = insert(Suppression).values(reason=change.reason, **values)
    inserted: bool = change.session.execute(
        statement.on_conflict_do_update(
            constraint="uq_suppressions_recipient",
            set_={
                "created_at": func.greatest(Suppression.created_at, statement.excluded.created_at)
            },
        ).returning(literal_column("xmax = 0"))  # true for a new row, false for an update
    ).scalar_one()
    if not inserted:
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
    details: dict[str, object] = {"reason": change.reason, "channel": change.channel}
    if change.lead_id is not None:
        details["lead_id"] = str(change.lead_id)
    record_audit(
        change.session,
        change.actor,
        OPTOUT_ADDED if opted_out else OPTOUT_REMOVED,
        org_id=change.org_id,
        target=f"recipient:{change.recipient_bidx.hex()}",
        details=details,
    )
    data: EventData = {
        "lead_id": str(change.lead_id) if change.lead_id else None,
        "opted_out": opted_out,
        "reason": change.reason,
        "channel": change.channel,
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


# --------------------------------------------------------------------------- email


def email_lead_id(session: Session, recipient_bidx: bytes) -> uuid.UUID | None:
    """The org's lead with this email address (blind index), if any."""
    return session.scalar(select(Lead.id).where(Lead.email_bidx == recipient_bidx).limit(1))


def record_email_suppression(
    session: Session,
    cipher: OrgCipher,
    email: str,
    reason: EmailSuppressionReason,
    actor: str,
    after_commit: AfterCommit,
    now: datetime,
) -> bool:
    """Block every later email to `email` in this org; False if it was already blocked."""
    return suppress_email_index(
        OptoutChange(session, cipher, email_index(cipher, email), reason, actor, after_commit, now)
    )


def suppress_email_index(change: OptoutChange) -> bool:
    """record_optout for an email blind index (an unsubscribe link knows only the lead)."""
    lead_id = change.lead_id or email_lead_id(change.session, change.recipient_bidx)
    return record_optout(replace(change, lead_id=lead_id, channel="email"))


# --------------------------------------------------------------------------- at the door

INBOUND_ACTOR = "sms:inbound"


def record_inbound_optout(
    session: Session,
    cipher: OrgCipher,
    sender: str,
    body: str,
    after_commit: AfterCommit,
    now: datetime,
    requested_at: datetime | None = None,
) -> bool:
    """If an inbound message from `sender` opts out, suppress the sender; True if it does.

    The intake calls this in the transaction that stores the message's event (before the 2xx),
    or, for a message spooled during a database outage, before it replays anything:
    `requested_at` is then when the message arrived. From that COMMIT on, every send to the
    number is blocked at claim time, whatever order the queue delivers later events in.
    """
    if classify(body) is not Intent.OPT_OUT:
        return False
    bidx = phone_index(cipher, sender)
    change = OptoutChange(
        session, cipher, bidx, optout_reason(body), INBOUND_ACTOR, after_commit, now
    )
    record_optout(replace(change, lead_id=lead_id_for(session, bidx), requested_at=requested_at))
    return True


# --------------------------------------------------------------------------- Meta platforms


@dataclass(frozen=True)
class PlatformSender:
    """Who wrote on WhatsApp, Messenger or Instagram: the platform, its user id, and the phone
    number the platform vouches for (WhatsApp's sender id is one), if any."""

    platform: str
    user_id: str
    phone: str | None


def record_platform_optout(
    session: Session,
    cipher: OrgCipher,
    sender: PlatformSender,
    body: str,
    after_commit: AfterCommit,
    now: datetime,
    requested_at: datetime | None = None,
) -> bool:
    """If a Meta message opts out, suppress that channel and SMS too; True if it does.

    A person who says STOP on WhatsApp has said it to the business, not to one app: their
    platform identity is suppressed (channel = the platform), and so are the phone number
    the platform gave (WhatsApp) and the phone of the lead this identity belongs to (SMS)."""
    if classify(body) is not Intent.OPT_OUT:
        return False
    identity = platform_index(cipher, f"{sender.platform}:{sender.user_id}")
    lead = session.scalars(select(Lead).where(Lead.platform_bidx == identity).limit(1)).first()
    targets = {identity: sender.platform}
    if sender.phone is not None:
        targets.setdefault(phone_index(cipher, sender.phone), "sms")
    if lead is not None and lead.phone_bidx is not None:
        targets.setdefault(lead.phone_bidx, "sms")
    reason = f"{sender.platform}_{optout_reason(body)}"
    for bidx, channel in targets.items():
        actor = f"{sender.platform}:inbound"
        change = OptoutChange(session, cipher, bidx, reason, actor, after_commit, now)
        lead_id = lead.id if lead is not None else None
        if lead_id is None and channel == "sms":
            lead_id = lead_id_for(session, bidx)  # a lead known by this phone, if any
        record_optout(replace(change, lead_id=lead_id, requested_at=requested_at, channel=channel))
    return True


# --------------------------------------------------------------------------- reported ones


@dataclass(frozen=True)
class SuppressionRecord:
    """An opt-out as the tenant API shows it: the lead it matches (if any, with its phone),
    why, how it reached the business, and the business's note."""

    id: uuid.UUID
    lead_id: uuid.UUID | None
    phone: str | None
    reason: str
    note: str | None
    created_at: datetime


@dataclass(frozen=True)
class RecordedOptout:
    suppression: SuppressionRecord
    created: bool  # False: the number was already suppressed (nothing changed)


def record_reported_optout(
    session: Session,
    cipher: OrgCipher,
    phone: str,
    channel: str,
    note: str | None,
    actor: str,
    after_commit: AfterCommit,
    now: datetime,
) -> RecordedOptout:
    """An opt-out the business received by `channel` (one of REPORTED_CHANNELS), recorded like
    a STOP, with its note encrypted (it may name people). Only the person lifts it (START).
    Tenant session; `phone` in E.164."""
    bidx = phone_index(cipher, phone)
    lead_id = lead_id_for(session, bidx)
    change = OptoutChange(
        session, cipher, bidx, REPORTED_PREFIX + channel, actor, after_commit, now, lead_id
    )
    created = record_optout(change)
    row = session.scalars(select(Suppression).where(Suppression.recipient_bidx == bidx)).one()
    if created:
        row.note_ct = cipher.encrypt_text(note, TABLE, "note_ct", row.id)
        session.flush()
    record = SuppressionRecord(
        row.id,
        lead_id,
        None,  # the answer does not repeat the number it was given
        row.reason,
        cipher.decrypt_text(row.note_ct, TABLE, "note_ct", row.id),
        row.created_at,
    )
    return RecordedOptout(record, created)


def list_suppressions(
    session: Session, cipher: OrgCipher, position: Position | None, limit: int
) -> list[SuppressionRecord]:
    """Tenant session: newest first. A suppression keeps only a blind index, so the number
    shown is the matching lead's (none once that person was erased)."""
    query = select(Suppression, Lead.id, Lead.phone_ct).outerjoin(
        Lead, and_(Lead.org_id == Suppression.org_id, Lead.phone_bidx == Suppression.recipient_bidx)
    )
    if position is not None:
        query = query.where(after(Suppression.created_at, Suppression.id, position, True))
    query = query.order_by(Suppression.created_at.desc(), Suppression.id.desc()).limit(limit)
    return [
        SuppressionRecord(
            row.id,
            lead_id,
            cipher.decrypt_text(phone_ct, LEADS_TABLE, "phone_ct", lead_id) if lead_id else None,
            row.reason,
            cipher.decrypt_text(row.note_ct, TABLE, "note_ct", row.id),
            row.created_at,
        )
        for row, lead_id, phone_ct in session.execute(query).tuples()
    ]
