"""One imported row: its cells checked and turned into lead fields, or the reason it is
rejected. Reasons are fixed phrases naming a field, never a value from the row."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from email_validator import EmailNotValidError, validate_email

from models.imports import Cells
from models.leads import LeadFields
from models.normalize import (
    InvalidPhoneNumber,
    NationalNumberWithoutRegion,
    has_control_characters,
    normalize_phone,
)

DEFAULT_SOURCE = "import"
# The same caps as POST /v1/leads (intake/schemas.py).
MAX_LENGTHS = {
    "name": 200,
    "phone": 32,
    "email": 254,
    "message": 5000,
    "source": 64,
    "consent_text": 1000,
    "consent_source": 64,
    "consent_sms": 16,
    "consent_at": 40,
}
FREE_TEXT = frozenset({"message", "consent_text"})
SOURCE_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]+$")
TRUE = frozenset({"true", "yes", "y", "1"})
FALSE = frozenset({"false", "no", "n", "0", ""})


class RowRejected(ValueError):
    """The row cannot be imported; the message is the reason shown in the error CSV."""


def check_row(cells: Cells, fields: list[str | None], region: str | None) -> LeadFields:
    """The row's lead, its phone in E.164 form (models.normalize) and its email normalised;
    raises RowRejected."""
    if len(cells) != len(fields):
        raise RowRejected(f"expected {len(fields)} fields, found {len(cells)}")
    values = {field: cell.strip() for field, cell in zip(fields, cells, strict=True) if field}
    for field, value in values.items():
        check_text(field, value)
    phone, email = values.get("phone", ""), values.get("email", "")
    if not phone and not email:
        raise RowRejected("phone or email is required")
    consent = parse_consent(values.get("consent_sms", ""))
    consent_at = parse_time(values.get("consent_at", ""))
    if consent and consent_at is None:
        raise RowRejected("consent_sms is true but consent_at is empty")
    return LeadFields(
        name=values.get("name") or None,
        phone=check_phone(phone, region) if phone else None,
        email=check_email(email) if email else None,
        message=values.get("message") or None,
        source=check_source(values.get("source", "")),
        sms_consent=consent,
        consent_text=values.get("consent_text") or None,
        consent_at=consent_at,
        consent_source=check_source(values.get("consent_source", "")) if consent else None,
    )


def check_text(field: str, value: str) -> None:
    if len(value) > MAX_LENGTHS[field]:
        raise RowRejected(f"{field} is longer than {MAX_LENGTHS[field]} characters")
    if has_control_characters(value, line_breaks_allowed=field in FREE_TEXT):
        raise RowRejected(f"{field} contains control characters")


def check_phone(raw: str, region: str | None) -> str:
    try:
        return normalize_phone(raw, region)
    except NationalNumberWithoutRegion:
        raise RowRejected(
            "phone must be in +E.164 form (the organisation has no default region)"
        ) from None
    except InvalidPhoneNumber:
        raise RowRejected("phone is not a valid phone number") from None


def check_email(raw: str) -> str:
    try:
        return validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError:
        raise RowRejected("email is not a valid address") from None


def check_source(raw: str) -> str:
    if not raw:
        return DEFAULT_SOURCE
    if not SOURCE_PATTERN.match(raw):
        raise RowRejected("a source holds only letters, digits and _ . : -")
    return raw


def parse_consent(raw: str) -> bool:
    word = raw.casefold()
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    raise RowRejected("consent_sms must be true or false")


def parse_time(raw: str) -> datetime | None:
    """ISO 8601; a time without an offset is read as UTC."""
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise RowRejected("consent_at is not an ISO 8601 date or time") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
