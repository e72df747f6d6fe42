"""Canonical forms of identifiers, so blind indexes match however a value was typed."""

from __future__ import annotations

import phonenumbers


class InvalidPhoneNumber(ValueError):
    """The text is not a valid, dialable phone number."""


def normalize_phone(raw: str, default_region: str | None = "US") -> str:
    """E.164 form of a phone number; raises InvalidPhoneNumber (without echoing it)."""
    try:
        parsed = phonenumbers.parse(raw, None if raw.strip().startswith("+") else default_region)
    except phonenumbers.NumberParseException:
        raise InvalidPhoneNumber("not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber("not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    return raw.strip().casefold()
